package main

import (
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// yamlFile writes doc into a file of the test and returns its path.
func yamlFile(t testing.TB, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nproxy.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const yamlProxy = "proxies: [{in: {type: tcp, host: 127.0.0.1, port: 6789}, out: {type: tcp, host: 127.0.0.1, port: 9876}}]\n"

var tcpArgs = []string{"--in", "type=tcp,host=127.0.0.1,port=6789", "--out", "type=tcp,host=127.0.0.1,port=9876"}

// Each value the issue found YAML accepting is refused, from the file and
// from the command line alike, with the same message.
func TestConfigRanges(t *testing.T) {
	t.Parallel()
	most := strconv.Itoa(loopsPerCore * runtime.NumCPU())
	for _, tc := range []struct {
		yaml   string
		option []string
		want   string
	}{
		{"loops: -3", []string{"--loops", "-3"}, "loops -3 out of range (1-1024)"},
		{"loops: 0", []string{"--loops", "0"}, "loops 0 out of range (1-1024)"},
		{"loops: 100000", []string{"--loops", "100000"}, "loops 100000 out of range (1-1024)"},
		{"loops: 1025\nforce_loops: true", []string{"--force-loops", "--loops", "1025"}, "loops 1025 out of range (1-1024)"},
		{"buffer_size: -5", []string{"--buffer-size", "-5"}, "buffer_size -5 out of range (0-1073741824)"},
		{"max_connections: -1", []string{"--max-connections", "-1"}, "max_connections -1 out of range (0-1000000000)"},
		{"pipe_size: -1", []string{"--pipe-size", "-1"}, "pipe_size -1 out of range (0-268435456)"},
		{"loops: two", []string{"--loops", "two"}, `loops expects an integer, got "two"`},
		{"verbosity: 99", nil, "verbosity 99 out of range (0-3)"},
		{"verbosity: -1", nil, "verbosity -1 out of range (0-3)"},
		{"no_splice: {a: 1}", nil, "no_splice expects a boolean (0/1, true/false), got a map"},
	} {
		_, _, fileErr := configure([]string{"-c", yamlFile(t, tc.yaml+"\n"+yamlProxy)})
		if fileErr == nil || !strings.Contains(fileErr.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.yaml, fileErr, tc.want)
		}
		if tc.option == nil {
			continue
		}
		_, _, argErr := configure(append(append([]string{}, tc.option...), tcpArgs...))
		if argErr == nil || !strings.Contains(argErr.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.option, argErr, tc.want)
		}
	}
	// More loops than loopsPerCore per core only when forced.
	big := strconv.Itoa(loopsPerCore*runtime.NumCPU() + 1)
	_, _, err := configure(append([]string{"--loops", big}, tcpArgs...))
	if err == nil || !strings.Contains(err.Error(), "loops "+big+" out of range (1-"+most+", ") {
		t.Errorf("--loops %s: error %v", big, err)
	}
	for _, forced := range [][]string{{"--force-loops", "--loops", big}, {"-c", yamlFile(t, "force_loops: true\nloops: "+big+"\n"+yamlProxy)}} {
		s, _, err := configure(append(forced, tcpArgs...))
		if err != nil || strconv.Itoa(s.Loops) != big {
			t.Errorf("%q: %v", forced, err)
		}
	}
}

// Connector parameters from the file and from specs: the values the issue
// found taken are refused with the proxy, the connector and the key named.
func TestConfigConnectorValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, spec, want string }{
		{"timeout: .nan", "timeout=NaN", "proxy #1: 'out' connector (tcp): timeout NaN out of range"},
		{"timeout: .inf", "timeout=+Inf", "proxy #1: 'out' connector (tcp): timeout +Inf out of range"},
		{"timeout: 1e300", "timeout=1e300", "proxy #1: 'out' connector (tcp): timeout 1e+300 out of range"},
		{"timeout: 0", "timeout=0", "proxy #1: 'out' connector (tcp): timeout 0 out of range"},
		{"host: {a: 1}", "host.a=1", "proxy #1: 'out' connector (tcp): host expects a string, got a map"},
	} {
		doc := "proxies: [{in: {type: tcp, host: 127.0.0.1, port: 6789}, out: {type: tcp, port: 9876, " + tc.yaml + "}}]\n"
		if !strings.HasPrefix(tc.yaml, "host") {
			doc = strings.Replace(doc, "port: 9876,", "port: 9876, host: 127.0.0.1,", 1)
		}
		_, _, fileErr := configure([]string{"-c", yamlFile(t, doc)})
		if fileErr == nil || !strings.Contains(fileErr.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.yaml, fileErr, tc.want)
		}
		out := "type=tcp,port=9876," + tc.spec
		if !strings.HasPrefix(tc.spec, "host") {
			out += ",host=127.0.0.1"
		}
		_, _, argErr := configure([]string{"--in", "type=tcp,port=6789", "--out", out})
		if argErr == nil || !strings.Contains(argErr.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.spec, argErr, tc.want)
		}
	}
	// dual's timeout, which turned .nan into its default.
	doc := `proxies: [{in: {type: dual, port: 443, timeout: .nan, server_first: {type: tcp, host: a, port: 22},
  client_first: {type: tcp, host: a, port: 443}}, out: {type: dummy}}]`
	_, _, err := configure([]string{"-c", yamlFile(t, doc)})
	if want := "proxy #1: 'in' connector (dual): timeout NaN out of range"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("dual timeout .nan: error %v, want %q", err, want)
	}
}

// The bracketed IPv6 form is taken wherever a host is, and stored without
// its brackets.
func TestConfigBracketedHosts(t *testing.T) {
	t.Parallel()
	_, proxies, err := configure([]string{"--in", "type=tcp,host=[::1],port=6789", "--out", "type=tcp,host=[::1],port=9876",
		"-c", yamlFile(t, "proxies: [{in: {type: tcp, host: '[::1]', port: 1}, out: {type: connect, host: '[::1]', port: 2, proxy_host: '[::1]'}}]")})
	if err != nil {
		t.Fatal(err)
	}
	if len(proxies) != 2 {
		t.Fatalf("%d proxies, want 2", len(proxies))
	}
}

// Unknown keys: the first few, then a count, in one short line.
func TestConfigUnknownKeys(t *testing.T) {
	t.Parallel()
	var doc strings.Builder
	for i := range 50 {
		doc.WriteString("bogus" + strconv.Itoa(i) + ": 1\n")
	}
	_, _, err := configure([]string{"-c", yamlFile(t, doc.String()+yamlProxy)})
	if err == nil || !strings.Contains(err.Error(), "unknown parameters 'bogus0', 'bogus1', 'bogus10' and 47 more (known: ") {
		t.Fatalf("error %v", err)
	}
	if len(err.Error()) > 400 { // the known keys take most of it
		t.Errorf("error line of %d bytes", len(err.Error()))
	}
	_, _, err = configure([]string{"-c", yamlFile(t, "proxies: [{in: {type: tcp, port: 1}, out: {type: tcp, host: a, port: 2}, hook: x}]")})
	if err == nil || !strings.Contains(err.Error(), "proxy #1: unknown parameter 'hook' (known: in, out)") {
		t.Errorf("error %v", err)
	}
}

// -v adds to the file's verbosity up to debug; more -v than levels is a
// mistake said at once.
func TestConfigVerbosity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0}, {[]string{"-v"}, 1}, {[]string{"-vv"}, 2}, {[]string{"-v", "--verbose", "-v"}, 3},
		{[]string{"-c", yamlFile(t, "verbosity: 2\n"+yamlProxy), "-vv"}, 3},
	} {
		s, _, err := configure(append(tc.args, tcpArgs...))
		if err != nil || s.Verbosity != tc.want {
			t.Errorf("%q: verbosity %v, %v; want %d", tc.args, s, err, tc.want)
		}
	}
	for _, args := range [][]string{{"-vvvv"}, {"-vv", "-vv"}} {
		if _, _, err := configure(append(args, tcpArgs...)); err == nil || !strings.Contains(err.Error(), "-v given more than 3 times") {
			t.Errorf("%q: error %v", args, err)
		}
	}
}

// Options override the file wherever they stand; files add proxies.
func TestConfigMerge(t *testing.T) {
	t.Parallel()
	file := yamlFile(t, "loops: 2\nbuffer_size: 0\nmax_connections: 7\n"+yamlProxy)
	s, proxies, err := configure(append([]string{"--loops", "1", "-c", file}, tcpArgs...))
	if err != nil {
		t.Fatal(err)
	}
	if s.Loops != 1 || s.BufferSize != -1 || s.MaxConnections != 7 || len(proxies) != 2 {
		t.Errorf("settings %+v, %d proxies", s, len(proxies))
	}
}

func TestParseSpec(t *testing.T) {
	t.Parallel()
	for spec, want := range map[string]string{
		`type=ssl,SSL_alpn="h2,http/1.1",port=1`:     `map[SSL_alpn:h2,http/1.1 port:1 type:ssl]`,
		`SSL_alpn='h2,http/1.1'`:                     `map[SSL_alpn:h2,http/1.1]`,
		`a="x\"y\\z"`:                                `map[a:x"y\z]`,
		`SSL_alpn=h2,SSL_alpn=http/1.1`:              `map[SSL_alpn:[h2 http/1.1]]`,
		`a=1,,b=`:                                    `map[a:1 b:]`,
		`server_first.port=22,server_first.type=tcp`: `map[server_first:map[port:22 type:tcp]]`,
		`a=x"y`: `map[a:x"y]`,
	} {
		m, err := parseSpec(spec)
		if err != nil || fmtMap(m) != want {
			t.Errorf("parseSpec(%s) = %s, %v; want %s", spec, fmtMap(m), err, want)
		}
	}
	for spec, want := range map[string]string{
		`a="x`:                "a: quote not closed",
		`a="x"y`:              "a: a quoted value must end at a comma",
		`noequals`:            `"noequals" is not key=value`,
		`=1`:                  `"=1" is not key=value`,
		`a.b=1,a=2`:           "a: a is both a value and a connector",
		`a=2,a.b=1`:           "a.b: a is both a value and a connector",
		"a.b.c.d.e.f.g.h.i=1": "more than 8 levels",
	} {
		if _, err := parseSpec(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSpec(%s): error %v, want %q", spec, err, want)
		}
	}
}

func fmtMap(m map[string]any) string {
	if m == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(k + ":")
		switch v := m[k].(type) {
		case map[string]any:
			b.WriteString(fmtMap(v))
		case []any:
			b.WriteString("[")
			for j, e := range v {
				if j > 0 {
					b.WriteString(" ")
				}
				b.WriteString(e.(string))
			}
			b.WriteString("]")
		default:
			b.WriteString(v.(string))
		}
	}
	b.WriteString("]")
	return b.String()
}

// checkOneLine is the fuzz targets' invariant: a configuration, or one short
// error line.
func checkOneLine(t *testing.T, err error) {
	if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 600) {
		t.Fatalf("error is not one short line (%d bytes): %.200q", len(err.Error()), err)
	}
}

// FuzzConfigYAML feeds documents to -c: a configuration or one error line,
// never a panic; alias bombs are refused by the YAML decoder's budget.
func FuzzConfigYAML(f *testing.F) {
	for _, seed := range []string{
		yamlProxy, "loops: -3\n" + yamlProxy, "verbosity: 99", "{}", "[]", "~", "proxies: {0: {in: {}, out: {}}}",
		"proxies: [{in: {type: dual, port: 1, server_first: {type: tcp, host: '[::1]', port: 2}, client_first: {type: tcp, host: a, port: 3}, probes: [{type: tls, sni: ['*.x'], out: server_first}]}, out: {type: dummy}}]",
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
		"proxies: [{in: {type: tcp, port: 1, 1: 2}, out: {type: tcp, host: {a: b}, port: 2}}]",
		"maxconn: 5\nallow: ['10.0.0.0/8', '::1']\nproxies: [{in: {type: tcp, port: 1, deny: [1.2.3.4/33], idle_timeout: 1}, out: {type: tcp, host: a, port: 2}}]",
		"proxies: [{in: {type: tcp, port: 1}, out: {type: tcp, balance: source, check: tcp, rise: 2, servers: [{host: a, port: 2, weight: 3}, {port: x}]}}]",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		keys, err := parseYAML([]byte(doc))
		if err == nil {
			c := newConfig()
			if err = c.merge(keys, "f.yaml"); err == nil {
				var s *settings
				if s, err = c.decode(); err == nil {
					_, err = s.build()
				}
			}
		}
		checkOneLine(t, err)
	})
}

// FuzzSpec feeds --in and --out specs through the parser and the
// connectors.
func FuzzSpec(f *testing.F) {
	for _, seed := range []string{
		"type=tcp,host=[::1],port=6789", `type=ssl,port=1,SSL_alpn="h2,http/1.1",SSL_alpn=x`, "type=dual,port=1,server_first.type=tcp,server_first.host=a,server_first.port=2,client_first.type=tcp,client_first.host=b,client_first.port=3,probes.0.type=ssh,probes.0.out=server_first",
		"a.b.c=1,a.b=2", `x='\'`, "type=connect,host=a,port=1,proxy_host=b,timeout=1e300",
	} {
		f.Add(seed, "type=tcp,host=127.0.0.1,port=1")
	}
	f.Fuzz(func(t *testing.T, in, out string) {
		c, err := parseArgs([]string{"--in", in, "--out", out})
		if err == nil {
			var s *settings
			if s, err = c.decode(); err == nil {
				_, err = s.build()
			}
		}
		checkOneLine(t, err)
	})
}

// The values the issue found YAML taking, run as users run nproxy: exit
// status 2 and one line, before anything listens.
func TestConfigErrorsFromTheIssue(t *testing.T) {
	t.Parallel()
	in, out := unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
	proxy := func(outParams string) string {
		return fmt.Sprintf("proxies: [{in: {type: tcp, host: 127.0.0.1, port: %d}, out: {type: tcp, port: %d, %s}}]\n", in, out, outParams)
	}
	good := proxy("host: 127.0.0.1")
	for _, tc := range []struct{ yaml, want string }{
		{"loops: -3\n" + good, "loops -3 out of range"},
		{"loops: 100000\n" + good, "loops 100000 out of range"},
		{"buffer_size: -5\n" + good, "buffer_size -5 out of range"},
		{"max_connections: -1\n" + good, "max_connections -1 out of range"},
		{"verbosity: 99\n" + good, "verbosity 99 out of range"},
		{proxy("host: 127.0.0.1, timeout: .nan"), "timeout NaN out of range"},
		{proxy("host: 127.0.0.1, timeout: .inf"), "timeout +Inf out of range"},
		{proxy("host: 127.0.0.1, timeout: 1e300"), "timeout 1e+300 out of range"},
		{proxy("host: 127.0.0.1, timeout: 0"), "timeout 0 out of range"},
		{proxy("host: {name: x}"), "host expects a string, got a map"},
	} {
		t.Run(strings.Fields(tc.want)[0]+" "+strings.Fields(tc.want)[1], func(t *testing.T) {
			t.Parallel()
			checkConfigError(t, []string{"-c", yamlFile(t, tc.yaml)}, []string{tc.want})
		})
	}
}

// A quoted value keeps its commas to the connector, which reads a list
// from it; a repeated key makes the same list.
func TestConfigCommaValues(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{`SSL_alpn="h2,http/1.1"`, `SSL_alpn='h2, http/1.1'`, `SSL_alpn=h2,SSL_alpn=http/1.1`} {
		_, proxies, err := configure([]string{"--in", "type=tcp,port=1", "--out", "type=ssl,host=a,port=2," + spec})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if alpn := proxies[0].Out().(*ssl.Out).ALPN; strings.Join(alpn, " ") != "h2 http/1.1" {
			t.Errorf("%s: SSL_alpn %q", spec, alpn)
		}
	}
}

// A billion laughs: a small file whose aliases expand to 9⁹ nodes is
// refused by the YAML decoder's budget, quickly and without the memory.
func TestConfigAliasBomb(t *testing.T) {
	t.Parallel()
	doc := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		doc += name + ": &" + name + " [" + strings.Repeat("*"+prev+",", 8) + "*" + prev + "]\n"
		prev = name
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := configure([]string{"-c", yamlFile(t, doc+yamlProxy)})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Errorf("error %v, want the YAML decoder's refusal", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 256<<20 {
		t.Errorf("decoding allocated %d MiB", grown>>20)
	}
}
