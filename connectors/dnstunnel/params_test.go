package dnstunnel

import (
	"strings"
	"testing"

	"github.com/nproxy/nproxy/connectors"
)

// The parameters as the command line and YAML give them.
func TestParams(t *testing.T) {
	if _, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "dns", "host": "*", "port": 53, "domain": "t.example", "key": "k", "max_sessions": 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := connectors.Build(connectors.SideOut, "out", map[string]any{"type": "dns", "domain": "t.example", "key": "k", "resolver": "[::1]:5353"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		side   connectors.Side
		params map[string]any
		want   string
	}{
		{connectors.SideOut, map[string]any{"type": "dns", "domain": "t.example"}, "key parameter is required"},
		{connectors.SideOut, map[string]any{"type": "dns", "domain": "t.example", "key": "k", "resolver": "dns.google"}, "want an IP address"},
		{connectors.SideOut, map[string]any{"type": "dns", "domain": strings.Repeat("a.", 110) + "example", "key": "k"}, "too long"},
		{connectors.SideIn, map[string]any{"type": "dns", "port": 53, "domain": "bad..name", "key": "k"}, "not a domain name"},
	} {
		if _, err := connectors.Build(bad.side, string(bad.side), bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want %q", bad.params, err, bad.want)
		}
	}
}
