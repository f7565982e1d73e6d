package nproxytest

import (
	"net"
	"testing"
)

// UDPServer runs a real UDP server on host (an IP) and a port of the
// kernel's choosing until the test ends, answering each datagram with
// reply(datagram) unless that is nil; it returns the port.
func UDPServer(t testing.TB, host string, reply func([]byte) []byte) int {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	// A deep queue, so that a burst the test sends is not lost here.
	c.(*net.UDPConn).SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := reply(buf[:n]); out != nil {
				c.WriteTo(out, from)
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// UDPEcho runs a UDP echo server (see UDPServer) and returns its port.
func UDPEcho(t testing.TB, host string) int {
	t.Helper()
	return UDPServer(t, host, func(p []byte) []byte { return p })
}
