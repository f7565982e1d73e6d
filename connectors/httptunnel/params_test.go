package httptunnel

import (
	"strings"
	"testing"

	"github.com/nproxy/nproxy/connectors"
)

// The command line's parameters reach the connector, and bad ones are
// refused with a message naming them.
func TestParams(t *testing.T) {
	c, err := connectors.Build(connectors.SideOut, "out", map[string]any{
		"type": "httptunnel", "host": "gw", "port": "8888", "proxy_host": "proxy", "proxy_port": "3128",
		"content_length": "4096", "strict": "1", "mux": "1", "key": "k", "websocket": "1",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := c.(*Out)
	if out.ProxyPort != 3128 || out.ContentLength != 4096 || !out.Strict || !out.Mux || !out.WebSocket {
		t.Fatalf("decoded %+v", out)
	}
	for _, bad := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"type": "httptunnel", "port": "8888", "mux": "1"}, "mux=1 needs a key"},
		{map[string]any{"type": "httptunnel", "port": "8888", "content_length": "8"}, "content_length 8 out of range"},
		{map[string]any{"type": "httptunnel", "port": "8888", "bogus": "1"}, "unknown parameter 'bogus'"},
	} {
		_, err := connectors.Build(connectors.SideIn, "in", bad.params)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want %q", bad.params, err, bad.want)
		}
	}
	for _, bad := range []struct {
		side   connectors.Side
		params map[string]any
		want   string
	}{
		{connectors.SideIn, map[string]any{"type": "httptunnel", "port": "8888", "ssl": "1"}, "SSL_cert_file"},
	} {
		_, err := connectors.Build(bad.side, "x", bad.params)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want %q", bad.params, err, bad.want)
		}
	}
}
