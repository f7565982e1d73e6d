package loop

import (
	"net"
	"os"
	"testing"
)

// An IPv6 address in brackets, as URLs and most tools write it, dials like
// the bare address ("[::1]" once failed with "can't resolve [::1]").
func TestDialBracketedIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		// nproxytest.Unavailable, which this package cannot import (it
		// imports loop): under CI a missing IPv6 loopback fails.
		if os.Getenv("CI") == "true" {
			t.Fatalf("under CI every peer must be present: no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	port := ln.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"::1", "[::1]"} {
		if s, err, _ := dialOnLoop(t, l, host, port, 0); err != nil || s == nil {
			t.Errorf("dial %s: %v", host, err)
		}
	}
}
