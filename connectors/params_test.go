package connectors_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"go.yaml.in/yaml/v3"
)

// sample has a field of every kind Decode knows, with the default bounds
// and with tag options.
type sample struct {
	Host      string           `param:"host"`
	ProxyHost string           `param:"proxy_host"`
	Port      int              `param:"port,port"`
	Count     int              `param:"count"`
	Level     int              `param:"level,min=-1,max=3"`
	Timeout   time.Duration    `param:"timeout"`
	Idle      time.Duration    `param:"idle,zero"`
	Ratio     float64          `param:"ratio,max=1"`
	On        bool             `param:"on"`
	Name      string           `param:"name"`
	Names     []string         `param:"names"`
	Probes    []map[string]any `param:"probes"`
	Extra     map[string]any   `param:"extra"`
	Needed    string           `param:"needed,required"`
	Small     uint8            `param:"small"`
	Wide      int64            `param:"wide,min=-5"`
}

// yamlParams reads a YAML map the way the command's -c does.
func yamlParams(t testing.TB, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"timeout: .nan", "timeout NaN out of range (above 0 to 86400 seconds)"},
		{"timeout: .inf", "timeout +Inf out of range"},
		{"timeout: -.inf", "timeout -Inf out of range"},
		{"timeout: 1e300", "timeout 1e+300 out of range"},
		{"timeout: 0", "timeout 0 out of range (above 0 to 86400 seconds)"},
		{"timeout: -1", "timeout -1 out of range"},
		{"timeout: 86401", "timeout 86401 out of range"},
		{"timeout: 1e-12", "timeout 1e-12 is below a nanosecond"},
		{"timeout: {a: 1}", "timeout expects a number of seconds, got a map"},
		{"timeout: soon", `timeout expects a number of seconds, got "soon"`},
		{"idle: -1", "idle -1 out of range (0 to 86400 seconds)"},
		{"port: 0", "port 0 out of range (1-65535)"},
		{"port: 65536", "port 65536 out of range (1-65535)"},
		{"count: -5", "count -5 out of range (0-16777216)"},
		{"count: 100000000", "count 100000000 out of range (0-16777216)"},
		{"count: 1e300", "count expects an integer, got 1e+300"},
		{"count: 1.5", "count expects an integer, got 1.5"},
		{"count: 99999999999999999999", "count expects an integer"},
		{"count: [1]", "count expects an integer, got a list"},
		{"level: 4", "level 4 out of range (-1-3)"},
		{"ratio: .nan", "ratio NaN out of range"},
		{"small: 256", "small 256 out of range for its type"},
		{"small: -1", "small -1 out of range (0-16777216)"},
		{"wide: -6", "wide -6 out of range (-5-16777216)"},
		{"ratio: 2", "ratio 2 out of range (0-1)"},
		{"on: maybe", `on expects a boolean (0/1, true/false), got "maybe"`},
		{"on: {a: 1}", "on expects a boolean (0/1, true/false), got a map"},
		{"host: {a: 1}", "host expects a string, got a map"},
		{"host: [a, b]", "host expects a string, got a list"},
		{"host: ~", "host expects a string, got nothing"},
		{"host: '[127.0.0.1]'", `host "[127.0.0.1]": only an IPv6 address goes in brackets`},
		{"host: 'a b'", `host "a b" is not a host name or an IP address`},
		{"proxy_host: 'x/y'", `proxy_host "x/y" is not a host name or an IP address`},
		{"name: {a: 1}", "name expects a string, got a map"},
		{"name: " + strings.Repeat("x", 5000), "name is longer than 4096 bytes"},
		{"names: {a: 1}", "names expects a list, got a map"},
		{"names: [{a: 1}]", "names[0] expects a string, got a map"},
		{"names: [" + strings.Repeat("a,", 300) + "a]", "names has more than 256 items"},
		{"probes: [1]", "probes[0] expects a map, got 1"},
		{"probes: x", `probes expects a list of maps, got "x"`},
		{"extra: [1]", "extra expects a map, got a list"},
		{"{}", "needed parameter is required"},
		{"zz: 1", "unknown parameter 'zz' (known: count, extra, host, idle, level, "},
		{"a: 1\nb: 2\nc: 3\nd: 4\ne: 5", "unknown parameters 'a', 'b', 'c' and 2 more (known: "},
	} {
		params := yamlParams(t, tc.yaml)
		if _, ok := params["needed"]; !ok && tc.yaml != "{}" {
			params["needed"] = "x"
		}
		err := connectors.Decode(&sample{}, params, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// The command line gives strings where YAML gives typed values: both decode
// to the same values, and fail with the same message.
func TestDecodeSpecAndYAMLAgree(t *testing.T) {
	t.Parallel()
	spec := map[string]any{"needed": "x", "host": "[::1]", "port": "443", "timeout": "0.5",
		"idle": "0", "on": "yes", "names": "a b", "level": "-1", "ratio": "0.25"}
	typed := yamlParams(t, "{needed: x, host: '[::1]', port: 443, timeout: 0.5, idle: 0, on: yes, names: [a, b], level: -1, ratio: 0.25}")
	var a, b sample
	if err := connectors.Decode(&a, spec, ""); err != nil {
		t.Fatal(err)
	}
	if err := connectors.Decode(&b, typed, ""); err != nil {
		t.Fatal(err)
	}
	want := sample{Needed: "x", Host: "::1", Port: 443, Timeout: 500 * time.Millisecond, On: true,
		Names: []string{"a", "b"}, Level: -1, Ratio: 0.25}
	for _, got := range []sample{a, b} {
		if got.Host != want.Host || got.Port != want.Port || got.Timeout != want.Timeout || got.Idle != 0 ||
			!got.On || strings.Join(got.Names, " ") != "a b" || got.Level != -1 || got.Ratio != 0.25 {
			t.Errorf("decoded %+v, want %+v", got, want)
		}
	}
	for _, key := range []string{"timeout", "port", "count"} {
		e1 := connectors.Decode(&sample{}, map[string]any{"needed": "x", key: "-3"}, "w")
		e2 := connectors.Decode(&sample{}, map[string]any{"needed": "x", key: -3}, "w")
		if e1 == nil || e2 == nil || e1.Error() != e2.Error() {
			t.Errorf("%s=-3: spec says %v, YAML says %v", key, e1, e2)
		}
	}
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"": "", "*": "*", "localhost": "localhost", "a-b.example.com.": "a-b.example.com.",
		"127.0.0.1": "127.0.0.1", "::1": "::1", "[::1]": "::1", "[fe80::1%lo]": "fe80::1%lo",
		"[::ffff:127.0.0.1]": "::ffff:127.0.0.1", "_srv.x": "_srv.x",
	} {
		if got, err := connectors.ParseHost("host", in); err != nil || got != want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"[::1", "[]", "[localhost]", "a..b", "a b", "host:80", strings.Repeat("a", 64), "é.com"} {
		if got, err := connectors.ParseHost("host", bad); err == nil {
			t.Errorf("ParseHost(%q) = %q, want an error", bad, got)
		}
	}
}

// An option nobody knows is a programming error, said at once rather than
// ignored: a connector would otherwise run without the bound it asked for.
func TestDecodeUnknownTagOption(t *testing.T) {
	t.Parallel()
	var c struct {
		N int `param:"n,maximum=3"`
	}
	err := connectors.Decode(&c, map[string]any{"n": 1}, "")
	if err == nil || !strings.Contains(err.Error(), `unknown param tag option "maximum=3"`) {
		t.Fatalf("error %v", err)
	}
}

// FuzzDecode feeds YAML documents to Decode: it fills the struct or returns
// one short line, and never panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"{needed: x, host: '[::1]', port: 443, timeout: 0.5}",
		"{needed: x, timeout: .nan, count: 1e300}",
		"{needed: {a: [1, 2]}, probes: {0: {type: ssh}, 1: {type: any}}}",
		"{needed: x, names: [a, [b]], extra: {a: 1}}",
		"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\nneeded: x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var params map[string]any
		if yaml.Unmarshal([]byte(doc), &params) != nil {
			return
		}
		err := connectors.Decode(&sample{}, params, "'in' connector (x)")
		if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 400) {
			t.Fatalf("error is not one short line: %q", err)
		}
	})
}
