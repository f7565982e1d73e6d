package dual

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/tcp"
	"go.yaml.in/yaml/v3"
)

// A configuration as the command reads it from YAML.
const yamlConfig = `
type: dual
port: 4430
timeout: 0.25
server_first: {type: tcp, host: 127.0.0.1, port: 22}
client_first: {type: tcp, host: 127.0.0.1, port: 8443}
probes:
  - {type: tls, sni: ["*.example.com", example.com], alpn: h2 http/1.1, out: {type: tcp, host: 127.0.0.1, port: 9443}}
  - {type: ssh, out: server_first}
  - {type: http, host: [zowie.*], out: client_first}
  - {type: regex, pattern: '^\x00\x00', min: 2, out: client_first}
  - {type: any, out: server_first}
`

func TestBuildFromYAML(t *testing.T) {
	var params map[string]any
	if err := yaml.Unmarshal([]byte(yamlConfig), &params); err != nil {
		t.Fatal(err)
	}
	c, err := connectors.BuildIn("in", params)
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*In)
	if in.Port != 4430 || in.Timeout != 250*time.Millisecond || in.Host != "" {
		t.Errorf("port %d timeout %v host %q", in.Port, in.Timeout, in.Host)
	}
	sf, cf := in.ServerFirst.(*tcp.Out), in.ClientFirst.(*tcp.Out)
	if sf.Port != 22 || cf.Port != 8443 {
		t.Errorf("server_first port %d, client_first port %d", sf.Port, cf.Port)
	}
	if len(in.Routes) != 5 {
		t.Fatalf("%d routes, want 5", len(in.Routes))
	}
	wantProbes := []Probe{
		TLS{SNI: []string{"*.example.com", "example.com"}, ALPN: []string{"h2", "http/1.1"}},
		SSH{}, HTTP{Host: []string{"zowie.*"}}, nil, Any{},
	}
	for i, want := range wantProbes {
		if want != nil && !reflect.DeepEqual(in.Routes[i].Probe, want) {
			t.Errorf("probe %d: %#v, want %#v", i, in.Routes[i].Probe, want)
		}
	}
	if re := in.Routes[3].Probe.(Regex); re.Min != 2 || re.Check([]byte("\x00\x00")) != Match {
		t.Errorf("regex probe %+v", re)
	}
	if out := in.Routes[0].Out.(*tcp.Out); out.Port != 9443 {
		t.Errorf("tls route to port %d", out.Port)
	}
	if in.Routes[1].Out != in.ServerFirst || in.Routes[2].Out != in.ClientFirst {
		t.Error("routes by name must reuse dual's own connectors")
	}
}

// TestBuildDefaults: timeout and host take Net::Proxy's defaults, and
// parameters may come as strings, as from the command line.
func TestBuildDefaults(t *testing.T) {
	c, err := connectors.BuildIn("in", map[string]any{
		"type": "dual", "port": "4430",
		"server_first": map[string]any{"type": "tcp", "host": "localhost", "port": "22"},
		"client_first": map[string]any{"type": "tcp", "host": "localhost", "port": "443"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if in := c.(*In); in.Timeout != 0 || in.Host != "" || len(in.Routes) != 0 {
		t.Errorf("%+v", in)
	}
}

func TestBuildErrors(t *testing.T) {
	tcpOut := map[string]any{"type": "tcp", "host": "localhost", "port": 22}
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"type": "dual", "port": 4430, "server_first": tcpOut, "client_first": tcpOut}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	probes := func(p ...map[string]any) []any {
		var l []any
		for _, m := range p {
			l = append(l, m)
		}
		return l
	}
	cases := []struct {
		params map[string]any
		want   string
	}{
		{base(map[string]any{"port": nil}), "'in' connector (dual): port parameter is required"},
		{base(map[string]any{"port": 70000}), "port 70000 out of range"},
		{base(map[string]any{"server_first": nil}), "server_first parameter is required"},
		{base(map[string]any{"client_first": map[string]any{"port": 1}}), "'type' key required for 'client_first' connector"},
		{base(map[string]any{"client_first": map[string]any{"type": "zlonk"}}), "unknown type 'zlonk' for 'client_first' connector"},
		{base(map[string]any{"timeout": "soon"}), "timeout must be a number of seconds"},
		{base(map[string]any{"zowie": 1}), "unknown parameter 'zowie'"},
		{base(map[string]any{"max_probe_bytes": -1}), "'in' connector (dual): max_probe_bytes must not be negative"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "smtp", "out": "server_first"})}), "probes[0] (smtp): 'type' must be one of"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "ssh"})}), "probes[0] (ssh): 'out' is required"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "ssh", "out": "third"})}), "'out' must be a connector, server_first or client_first"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "ssh", "sni": "x", "out": "server_first"})}), "probes[0] (ssh): unknown parameter 'sni'"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "regex", "out": "server_first"})}), "probes[0] (regex): pattern parameter is required"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "regex", "pattern": "(", "out": "server_first"})}), "probes[0] (regex): pattern: error parsing regexp"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "regex", "pattern": "x", "min": 99999, "out": "server_first"})}), "min 99999 out of range"},
		{base(map[string]any{"probes": probes(map[string]any{"type": "tls", "out": map[string]any{"type": "tcp", "host": "localhost"}})}), "probes[0] (tls) out"},
		{base(map[string]any{"probes": "ssh"}), "probes must be a list of maps"},
	}
	for _, c := range cases {
		_, err := connectors.BuildIn("in", c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.params, err, c.want)
		}
	}
	if _, err := connectors.BuildOut("out", map[string]any{"type": "dual", "port": 1}); err == nil {
		t.Error("dual must refuse to be an out connector")
	}
}
