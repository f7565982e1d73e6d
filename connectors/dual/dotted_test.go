package dual

import (
	"testing"

	"github.com/nproxy/nproxy/connectors"
)

// TestBuildFromDottedKeys: the command line's dotted keys reach the probes
// (probes.N.key=value), as the YAML list does.
func TestBuildFromDottedKeys(t *testing.T) {
	params := map[string]any{"type": "dual", "port": "4430",
		"server_first": map[string]any{"type": "tcp", "host": "localhost", "port": "22"},
		"client_first": map[string]any{"type": "tcp", "host": "localhost", "port": "443"},
		"probes": map[string]any{
			"1": map[string]any{"type": "tls", "sni": "*.example.com example.com", "out": "client_first"},
			"0": map[string]any{"type": "ssh", "out": "server_first"},
		}}
	c, err := connectors.BuildIn("in", params)
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*In)
	if len(in.Routes) != 2 || in.Routes[0].Probe != (SSH{}) || len(in.Routes[1].Probe.(TLS).SNI) != 2 {
		t.Fatalf("routes %+v", in.Routes)
	}
}
