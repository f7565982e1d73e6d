package nproxy_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/nproxytest"
)

// limitedProxy serves a proxy to a fresh backend with limits, on a Server
// of its own.
func limitedProxy(t *testing.T, lim nproxy.Limits) (*backend, int, *nproxytest.LogBuffer) {
	t.Helper()
	srv, logs := newServer(t, 0)
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	p.SetLimits(lim)
	nproxytest.StartServer(t, srv, 0, p)
	return b, port, logs
}

// noMoreConnections checks that no further connection reaches b for a
// while: an absence can only be awaited for a bounded time.
func noMoreConnections(t *testing.T, b *backend, why string) {
	t.Helper()
	select {
	case <-b.conns:
		t.Fatalf("a connection reached the backend: %s", why)
	case <-time.After(150 * time.Millisecond):
	}
}

// dialFrom connects to 127.0.0.1:port from the address src.
func dialFrom(t *testing.T, src net.IP, port int) {
	t.Helper()
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: src}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

// reset ends a backend connection with a reset, which ends its client's too.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// maxconn 10, 50 clients at once: never more than 10 reach the backend;
// each one that leaves lets exactly one more in, until all 50 are served.
func TestMaxConn(t *testing.T) {
	t.Parallel()
	const max, clients = 10, 50
	b, port, _ := limitedProxy(t, nproxy.Limits{MaxConn: max})
	for i := 0; i < clients; i++ {
		nproxytest.Dial(t, port) // connects: the kernel's backlog holds it
	}
	var held []*net.TCPConn
	for served := 0; served < clients; served++ {
		for len(held) < min(max, clients-served) {
			held = append(held, b.accept(t))
		}
		if len(held) == max {
			noMoreConnections(t, b, "maxconn 10 is reached")
		}
		reset(held[0])
		held = held[1:]
	}
}

// max_per_source 2: a third client from the same address is closed at
// once, and a client from another address (127.0.0.2) still comes in.
func TestMaxPerSource(t *testing.T) {
	t.Parallel()
	b, port, _ := limitedProxy(t, nproxy.Limits{MaxPerSource: 2})
	nproxytest.Dial(t, port)
	nproxytest.Dial(t, port)
	b.accept(t)
	b.accept(t)
	nproxytest.DialClosed(t, port, nil, 5*time.Second)
	noMoreConnections(t, b, "the third client of 127.0.0.1")
	dialFrom(t, net.IPv4(127, 0, 0, 2), port)
	b.accept(t)
}

// A denied address is closed at once, whatever the allow list says; the
// others are relayed.
func TestAllowDeny(t *testing.T) {
	t.Parallel()
	b, port, logs := limitedProxy(t, nproxy.Limits{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	nproxytest.DialClosed(t, port, nil, 5*time.Second)
	noMoreConnections(t, b, "127.0.0.1 is denied")
	logs.WaitFor(t, "client 127.0.0.1 refused by the allow/deny lists")
	dialFrom(t, net.IPv4(127, 0, 0, 3), port)
	b.accept(t)
}

// idle_timeout closes a connection with no bytes either way, and not one
// whose bytes keep flowing.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	// A second: a busy machine may pause the test for a good part of it.
	const idle = time.Second
	b, port, _ := limitedProxy(t, nproxy.Limits{IdleTimeout: idle})
	quiet := nproxytest.Dial(t, port)
	b.accept(t)
	busy := nproxytest.Dial(t, port)
	busyServer := b.accept(t)
	begin := time.Now()
	for time.Since(begin) < 2*idle {
		busy.Write([]byte("x"))
		buf := make([]byte, 1)
		busyServer.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := busyServer.Read(buf); err != nil {
			t.Fatalf("a busy connection ended after %v: %v", time.Since(begin), err)
		}
		time.Sleep(idle / 20) // the traffic's pace, far below the timeout
	}
	nproxytest.ExpectEOF(t, quiet, 5*time.Second)
	if took := time.Since(begin); took < idle {
		t.Errorf("idle connection closed after %v, before idle_timeout %v", took, idle)
	}
}

// The Server's maxconn bounds all its proxies together: with 2, a client of
// either proxy waits while two are relayed, and comes in once one leaves.
func TestGlobalMaxConn(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, 0)
	srv.SetOptions(nproxy.Options{Limits: nproxy.Limits{MaxConn: 2}})
	b := newBackend(t)
	p1, port1 := tcpProxy(t, b.port)
	p2, port2 := tcpProxy(t, b.port)
	nproxytest.StartServer(t, srv, 0, p1, p2)
	nproxytest.Dial(t, port1)
	first := b.accept(t)
	nproxytest.Dial(t, port2)
	b.accept(t)
	nproxytest.Dial(t, port1)
	noMoreConnections(t, b, "the Server's maxconn 2 is reached")
	nproxytest.Dial(t, port2)
	noMoreConnections(t, b, "the Server's maxconn 2 is reached")
	reset(first)
	b.accept(t)
	noMoreConnections(t, b, "one left, one came in")
}
