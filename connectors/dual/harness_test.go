package dual

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// running is a Mainloop serving one dual proxy in a test.
type running struct {
	*nproxytest.Run
	port  int
	proxy *nproxy.Proxy
	logs  *nproxytest.LogBuffer
}

// startDual runs Mainloop(max) with in (given a free port on 127.0.0.1)
// and a dummy out, logging at debug level. Cleanup stops the loop and
// unregisters the proxy.
func startDual(t testing.TB, in *In, max int) *running {
	t.Helper()
	in.Host, in.Port = "127.0.0.1", nproxytest.FreePort(t)
	r := &running{port: in.Port, proxy: nproxy.New(in, dummy.Connector{}), logs: nproxytest.CaptureLog(t, 3)}
	r.Run = nproxytest.Start(t, max, r.proxy)
	return r
}

// dial connects a client to the proxy.
func (r *running) dial(t testing.TB) *net.TCPConn {
	t.Helper()
	return nproxytest.Dial(t, r.port)
}

// backend is a TCP server on 127.0.0.1 that runs serve for each connection
// or, when serve is nil, hands each connection to the test through conns.
type backend struct {
	name  string
	ln    net.Listener
	conns chan net.Conn
}

func newBackend(t testing.TB, name string, serve func(b *backend, c net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln, conns: make(chan net.Conn, 4096)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		close(b.conns)
		for c := range b.conns {
			c.Close()
		}
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			select {
			case b.conns <- c:
			default:
				c.Close()
				continue
			}
			if serve != nil {
				wg.Add(1)
				go func() { defer wg.Done(); serve(b, c) }()
			}
		}
	}()
	return b
}

// out is a tcp out connector to the backend.
func (b *backend) out() *tcp.Out {
	return &tcp.Out{Host: "127.0.0.1", Port: b.ln.Addr().(*net.TCPAddr).Port}
}

// next returns the backend's next connection, which the test serves.
func (b *backend) next(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no connection reached backend %s", b.name)
		return nil
	}
}

// none checks that no connection reached the backend.
func (b *backend) none(t testing.TB) {
	t.Helper()
	select {
	case <-b.conns:
		t.Fatalf("a connection reached backend %s", b.name)
	default:
	}
}

// bannerEcho speaks first, "<name> ready\n", then echoes what it reads
// until EOF and half-closes, as a server-first service (SSH) would greet.
func bannerEcho(b *backend, c net.Conn) {
	fmt.Fprintf(c, "%s ready\n", b.name)
	echo(b, c)
}

// echo sends back what it reads until EOF, then half-closes.
func echo(_ *backend, c net.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.(*net.TCPConn).CloseWrite()
}

// readLine reads one line from r within the connection's deadline.
func readLine(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}
