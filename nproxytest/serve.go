package nproxytest

import (
	"io"
	"net"
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

// EchoServer serves TCP echo on 127.0.0.1 until the test ends, half-closing
// after the client's EOF, and returns its port.
func EchoServer(t testing.TB) int {
	t.Helper()
	ln := Listener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
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
