//go:build soak

package soak

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// echoServer is a Go echo server on 127.0.0.1: what it reads it writes
// back (io.Copy splices TCP to TCP), and it half-closes at the client's EOF.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	// cut, when set, gives for each connection how many bytes to echo
	// before resetting it (a negative number: never).
	cut func() int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startEcho(t testing.TB) *echoServer {
	return startEchoOn(t, nproxytest.Listener(t))
}

// startEchoOn serves ln until the test ends; then it closes every
// connection and waits (5 s at most) for their goroutines.
func startEchoOn(t testing.TB, ln net.Listener) *echoServer {
	e := &echoServer{ln: ln, conns: map[net.Conn]bool{}}
	e.wg.Go(e.serve)
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		if !waitGroup(&e.wg, 5*time.Second) {
			t.Error("echo goroutines still running 5 s after their connections closed")
		}
	})
	return e
}

func (e *echoServer) port() int { return e.ln.Addr().(*net.TCPAddr).Port }

func (e *echoServer) serve() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.accepted.Add(1)
		e.mu.Lock()
		e.conns[c] = true
		e.mu.Unlock()
		e.wg.Go(func() {
			e.echo(c.(*net.TCPConn))
			e.mu.Lock()
			delete(e.conns, c)
			e.mu.Unlock()
		})
	}
}

func (e *echoServer) echo(c *net.TCPConn) {
	defer c.Close()
	if e.cut != nil {
		if n := e.cut(); n >= 0 {
			io.CopyN(c, c, n)
			c.SetLinger(0) // close sends a reset
			return
		}
	}
	io.Copy(c, c)
	c.CloseWrite()
}

// waitGroup waits for wg at most d and reports whether it ended.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
