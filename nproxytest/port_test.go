package nproxytest

import (
	"net"
	"strconv"
	"testing"
)

// Ports come from below the ephemeral range, which the kernel hands to
// outgoing connections, and are free on the address asked for.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if ip == "::1" {
			if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
				continue // no IPv6 loopback here
			} else {
				l.Close()
			}
		}
		for range 20 {
			port := FreePortOn(t, ip)
			if port < firstPort || port >= low {
				t.Fatalf("port %d of %s is outside [%d, %d)", port, ip, firstPort, low)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("port %d of %s is not free: %v", port, ip, err)
			}
			l.Close()
		}
	}
}
