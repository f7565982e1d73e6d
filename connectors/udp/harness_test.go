package udp

import (
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// relay is one udp in connector served by a loop of its own, so that tests
// run in parallel (Mainloop is one per process).
type relay struct {
	in    *In
	proxy *nproxy.Proxy
	logs  *nproxytest.LogBuffer
	loop  *loop.Loop
	addr  string // where clients send
}

// expectFlows fails t unless the relay counted flows flows of each
// datagrams both ways, and dropped none; it returns the counts. The counts
// are read on the loop: a reply is counted just after it is sent, so a
// client may hold its last reply before the loop has counted it.
func (r *relay) expectFlows(t *testing.T, flows, each uint64) Counts {
	t.Helper()
	var got Counts
	nproxytest.AwaitOnLoop(t, r.loop, "read the counts", func() bool { got = r.in.Counts(); return true })
	if got.FlowsOpened != flows || got.DatagramsIn != flows*each || got.DatagramsOut != flows*each || got.Dropped != 0 {
		t.Fatalf("counts %+v", got)
	}
	return got
}

// runAll runs f(0) ... f(n-1) at once and fails t with the first error
// once all returned.
func runAll(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- f(i) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// startRelay serves in (on 127.0.0.1 and a free port unless set) towards
// out, with the loop's log at debug, until the test ends. Extra proxies run
// on the same loop.
func startRelay(t *testing.T, in *In, out connectors.Out, extra ...*nproxy.Proxy) *relay {
	t.Helper()
	if in.Host == "" {
		in.Host = "127.0.0.1"
	}
	if in.Port == 0 {
		in.Port = udpPort(t, in.Host)
	}
	logs := &nproxytest.LogBuffer{}
	l, err := loop.New(loop.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{in: in, proxy: nproxy.New(in, out), logs: logs, loop: l}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("loop log:\n%s", logs)
		}
	})
	nproxytest.RunLoop(t, l, append([]*nproxy.Proxy{r.proxy}, extra...)...)
	host := in.Host
	if host == "*" {
		host = "127.0.0.1"
	}
	r.addr = net.JoinHostPort(host, strconv.Itoa(in.Port))
	return r
}

// udpPort returns a port of host (an IP) free for both TCP and UDP a moment
// ago ("*" checks the IPv6 wildcard).
func udpPort(t testing.TB, host string) int {
	t.Helper()
	if host == "*" {
		host = "::"
	}
	for range 50 {
		port := nproxytest.FreePortOn(t, host)
		c, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// client is a UDP socket of the test's, connected to the relay.
func client(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// exchange sends p and returns the reply, or fails within 5 s.
func exchange(t testing.TB, c *net.UDPConn, p []byte) []byte {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %d bytes: %v", len(p), err)
	}
	return buf[:n]
}

// silent reports that c gets nothing within d.
func silent(c *net.UDPConn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 65536))
	return err != nil
}

// waitCounts waits up to 5 s for ok(counts) and returns the counts.
func waitCounts(t testing.TB, in *In, what string, ok func(Counts) bool) Counts {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := in.Counts()
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: counts %+v", what, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func out(port int) *Out { return &Out{Host: "127.0.0.1", Port: port} }
