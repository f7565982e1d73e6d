package nproxytest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
)

// Serve registers proxies and runs nproxy.Mainloop(0) until the test ends,
// for in connectors that Start cannot wait for (no TCP port: icmp, dns).
func Serve(t testing.TB, proxies ...*nproxy.Proxy) {
	t.Helper()
	for _, p := range proxies {
		p.Register()
	}
	done := make(chan error, 1)
	go func() { done <- nproxy.Mainloop(0) }()
	t.Cleanup(func() {
		nproxy.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Mainloop did not return after Stop")
		}
		for _, p := range proxies {
			p.Unregister()
		}
	})
}

// EchoServer serves TCP echo (see Echo) on 127.0.0.1 until the test ends,
// and returns its port.
func EchoServer(t testing.TB) int {
	t.Helper()
	return ServeTCP(t, Echo)
}

// Echo sends back what c reads until EOF, then half-closes c. It copies
// through user space: Go's own splice would take pipes from a pool that
// only the garbage collector closes, and a test counting descriptors would
// see them.
func Echo(c net.Conn) {
	io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
	c.(interface{ CloseWrite() error }).CloseWrite()
}

// ServeTCP runs ServeOn on a new listener of 127.0.0.1 (see Listener), and
// returns its port.
func ServeTCP(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln := Listener(t)
	ServeOn(t, ln, handle)
	return ln.Addr().(*net.TCPAddr).Port
}

// ServeOn accepts on ln until the test ends, running handle on a goroutine
// of its own for each connection, which is closed when handle returns.
// When the test ends it closes ln and the connections still open, and
// fails t if a handler still runs 5 s later.
func ServeOn(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		open   = map[net.Conn]bool{}
		closed bool
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		ended := make(chan struct{})
		go func() { wg.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Error("connection handlers still running 5 s after their connections closed")
		}
	})
}

// WaitListening waits up to 5 s for something to listen on port of
// 127.0.0.1, and fails t if nothing does.
func WaitListening(t testing.TB, port int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !Listening(port); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d", port)
		}
	}
}

// EchoThrough sends n random bytes in chunks of random sizes to port, in
// front of an EchoServer, while reading them back, and fails t unless they
// come back byte-exact within d. With halfClose it then shuts its write side
// and expects EOF after the echo; without, it reads exactly the echo, for
// tunnels that end a session at their client's EOF whatever is in flight
// (ptunnel). It logs the time taken.
func EchoThrough(t testing.TB, port, n int, halfClose bool, d time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	payload := make([]byte, n)
	rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		for p := payload; len(p) > 0; {
			k := min(len(p), 1+mrand.IntN(32<<10))
			if _, err := c.Write(p[:k]); err != nil {
				werr <- err
				return
			}
			p = p[k:]
		}
		if halfClose {
			werr <- c.(*net.TCPConn).CloseWrite()
			return
		}
		werr <- nil
	}()
	start := time.Now()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if halfClose {
		if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
			t.Fatalf("after the echo: %d more bytes, %v; want EOF", len(rest), err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the echo differs from what was sent")
	}
	took := time.Since(start)
	t.Logf("%d bytes each way in %v (%.0f KiB/s)", n, took, float64(n)/1024/took.Seconds())
}

// StartPeer starts the program at path with args until the test ends (then
// it is killed by pid), and returns its output so far; the output is shown
// if the test failed.
func StartPeer(t testing.TB, path string, args ...string) *LogBuffer {
	t.Helper()
	out := &LogBuffer{}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", path, out.String())
		}
	})
	return out
}

// RunFor runs cmd with input as its standard input, for at most d, and
// returns its standard output and error; past d it kills cmd and says so
// in the error.
func RunFor(cmd *exec.Cmd, input []byte, d time.Duration) (stdout, stderr []byte, err error) {
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(input), &out, &errOut
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("%s did not finish within %v", cmd.Path, d)
	}
	return out.Bytes(), errOut.Bytes(), err
}
