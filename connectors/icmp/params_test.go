package icmp

import (
	"strings"
	"testing"

	"github.com/nproxy/nproxy/connectors"
)

// The parameters as the command line and YAML give them.
func TestParams(t *testing.T) {
	c, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "icmp", "password": "pw",
		"allow": []any{"10.0.0.0/8:22", "*:80", "127.0.0.1"}, "max_tunnels": 3})
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*In)
	for _, tc := range []struct {
		ip   [4]byte
		port uint32
		ok   bool
	}{{[4]byte{10, 1, 2, 3}, 22, true}, {[4]byte{10, 1, 2, 3}, 23, false}, {[4]byte{8, 8, 8, 8}, 80, true}, {[4]byte{127, 0, 0, 1}, 9, true}, {[4]byte{8, 8, 8, 8}, 22, false}} {
		if in.allowed(tc.ip, tc.port) != tc.ok {
			t.Errorf("allowed(%v, %d) = %v", tc.ip, tc.port, !tc.ok)
		}
	}
	if _, err := connectors.Build(connectors.SideOut, "out", map[string]any{"type": "icmp", "proxy_host": "gw", "host": "10.0.0.5", "port": "22", "password": "pw"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		side   connectors.Side
		params map[string]any
		want   string
	}{
		{connectors.SideIn, map[string]any{"type": "icmp", "allow": "::1"}, "IPv4"},
		{connectors.SideIn, map[string]any{"type": "icmp", "allow": "1.2.3.4:0"}, "bad port"},
		{connectors.SideIn, map[string]any{"type": "icmp", "max_tunnels": -1}, "max_tunnels -1 out of range"},
		{connectors.SideOut, map[string]any{"type": "icmp", "host": "h", "port": "1"}, "proxy_host parameter is required"},
	} {
		if _, err := connectors.Build(bad.side, string(bad.side), bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want %q", bad.params, err, bad.want)
		}
	}
}
