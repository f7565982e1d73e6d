package connect

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// logBuffer collects nproxy's log lines for a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls the log until it contains want, for up to 5 s.
func (b *logBuffer) waitFor(t *testing.T, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.String()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tunnels starts Mainloop(max) with one tcp-in proxy per out, each on a
// free 127.0.0.1 port, and returns those ports and the log. Cleanup stops
// the loop and unregisters the proxies.
func tunnels(t *testing.T, max int, outs ...*Out) ([]int, *logBuffer, <-chan error) {
	t.Helper()
	logs := &logBuffer{}
	nproxy.SetLogOutput(io.MultiWriter(logs, testWriter{t}))
	var ports []int
	var proxies []*nproxy.Proxy
	for _, out := range outs {
		port := ct.FreePort(t)
		p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out)
		p.Register()
		ports, proxies = append(ports, port), append(proxies, p)
	}
	done, returned := make(chan error, 1), make(chan struct{})
	go func() {
		done <- nproxy.Mainloop(max)
		close(returned)
	}()
	t.Cleanup(func() {
		nproxy.Stop()
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Error("Mainloop did not return after Stop")
		}
		for _, p := range proxies {
			p.Unregister()
		}
		nproxy.SetLogOutput(os.Stderr)
	})
	for _, port := range ports {
		waitListening(t, port, returned, done)
	}
	return ports, logs, done
}

// testWriter shows log lines in verbose test output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// waitListening waits until 127.0.0.1:port listens. It reads
// /proc/net/tcp rather than connecting (a connection would count as a
// proxied one) or binding (which could make nproxy's own bind fail).
func waitListening(t *testing.T, port int, returned <-chan struct{}, done <-chan error) {
	t.Helper()
	entry := fmt.Sprintf(" 0100007F:%04X 00000000:0000 0A ", port)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case <-returned:
			t.Fatalf("Mainloop returned at once: %v", <-done)
		default:
		}
		if table, err := os.ReadFile("/proc/net/tcp"); err == nil && bytes.Contains(table, []byte(entry)) {
			return
		}
	}
	t.Fatalf("nothing listens on port %d", port)
}

// dialTunnel connects a client to the tunnel entrance on port.
func dialTunnel(t *testing.T, port int) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// expectClosed reads until EOF or a reset within d and returns what came.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("client not closed within %v: %v (read %q)", d, err, got)
	}
	return got
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// echoCheck sends n random bytes through c while reading back the ct.Banner
// followed by those bytes. With halfClose it then shuts its write side and
// expects EOF after the echo; without, it reads exactly the echo, for
// tinyproxy, which tears the tunnel down at the client's EOF.
func echoCheck(t *testing.T, c *net.TCPConn, n int, halfClose bool) {
	t.Helper()
	payload := make([]byte, n)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		// random chunk sizes, so that segment boundaries vary
		for p := payload; len(p) > 0; {
			k := min(len(p), 1+rand.Intn(64<<10))
			if _, err := c.Write(p[:k]); err != nil {
				errc <- err
				return
			}
			p = p[k:]
		}
		if halfClose {
			errc <- c.CloseWrite()
			return
		}
		errc <- nil
	}()
	var got []byte
	var err error
	if halfClose {
		got, err = io.ReadAll(c)
	} else {
		got = make([]byte, len(ct.Banner)+n)
		_, err = io.ReadFull(c, got)
	}
	if err != nil {
		t.Fatalf("reading through the tunnel: %v after %d bytes", err, len(got))
	}
	if werr := <-errc; werr != nil {
		t.Fatalf("writing through the tunnel: %v", werr)
	}
	want := append([]byte(ct.Banner), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d (ct.Banner first, then the echo); first difference at %d",
			len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
