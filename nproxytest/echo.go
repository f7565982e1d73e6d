package nproxytest

import (
	"io"
	"net"
	"testing"
)

// EchoServer runs a TCP echo server on 127.0.0.1 until the test ends and
// returns its port: each connection gets back what it sends, and is closed
// once the client has shut down its side.
func EchoServer(t testing.TB) int {
	t.Helper()
	ln := Listener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
