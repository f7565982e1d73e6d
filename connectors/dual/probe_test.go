package dual

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// probeCase is an opening a client might send and what a probe says of it.
type probeCase struct {
	probe Probe
	in    string
	want  Verdict
}

// sshBanner is what OpenSSH's client sends first (captured from ssh -V's version).
const sshBanner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n"

const httpGet = "GET /index.html HTTP/1.1\r\nUser-Agent: curl/7.88.1\r\nHost: Zowie.Example.com:8443\r\nAccept: */*\r\n\r\n"

var probeCases = []probeCase{
	{SSH{}, sshBanner, Match},
	{SSH{}, "SSH-", Match},
	{SSH{}, "SSH", NeedMore},
	{SSH{}, "SSL-2.0", NoMatch},
	{SSH{}, httpGet, NoMatch},

	{HTTP{}, httpGet, Match},
	{HTTP{}, "GET / HTTP/1.0\n", Match},
	{HTTP{}, "M-SEARCH * HTTP/1.1\r\n", Match},
	{HTTP{}, "CONNECT zlonk.example.com:443 HTTP/1.1\r\n", Match},
	{HTTP{}, "GET / HTTP/1.1\r", NeedMore},
	{HTTP{}, "GET /", NeedMore},
	{HTTP{}, "get / HTTP/1.1\r\n", NoMatch},
	{HTTP{}, "GET  / HTTP/1.1\r\n", NoMatch},
	{HTTP{}, "GET / HTTP/1.1 \r\n", NoMatch},
	{HTTP{}, "GET / HTTP/11\r\n", NoMatch},
	{HTTP{}, "GET / HTTP/1.1\rX", NoMatch},
	{HTTP{}, "GET /\x00 HTTP/1.1\r\n", NoMatch},
	{HTTP{}, "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n", NoMatch},
	{HTTP{}, sshBanner, NoMatch},
	{HTTP{Host: []string{"*.example.COM"}}, httpGet, Match},
	{HTTP{Host: []string{"zlonk.example.com", "zowie.example.com"}}, httpGet, Match},
	{HTTP{Host: []string{"example.com"}}, httpGet, NoMatch},
	{HTTP{Host: []string{"*"}}, "GET / HTTP/1.0\r\n\r\n", NoMatch},
	{HTTP{Host: []string{"*"}}, "GET / HTTP/1.1\r\nAccept: */*\r\n", NeedMore},
	{HTTP{Host: []string{"::1"}}, "GET / HTTP/1.1\r\nhost:[::1]:80\r\n", Match},
	{HTTP{Host: []string{"*"}}, "GET / HTTP/1.1\r\nBad Header: x\r\n", NoMatch},
	{HTTP{Host: []string{"*"}}, "GET / HTTP/1.1\r\n folded\r\n", NoMatch},
	{HTTP{Host: []string{"*"}}, "GET / HTTP/1.1\r\nX: a\x00b", NoMatch},

	{Regex{RE: regexp.MustCompile(`^\x00\x00\x00[\x20-\x7f]`), Min: 4}, "\x00\x00\x00", NeedMore},
	{Regex{RE: regexp.MustCompile(`^\x00\x00\x00[\x20-\x7f]`), Min: 4}, "\x00\x00\x00A", Match},
	{Regex{RE: regexp.MustCompile(`^\x00\x00\x00[\x20-\x7f]`), Min: 4}, "\x00\x00\x01A", NoMatch},
	{Regex{RE: regexp.MustCompile(`^OPTIONS`)}, "O", NoMatch},
	{Regex{RE: regexp.MustCompile(`^OPTIONS`), Min: 7}, "OPTIONS", Match},

	{Any{}, "", NeedMore},
	{Any{}, "x", Match},

	{TLS{}, "\x16\x03\x01\x00", NeedMore},
	{TLS{}, "\x16\x03\x01\x00\x00", NoMatch},     // empty record
	{TLS{}, "\x16\x03\x01\x40\x01", NoMatch},     // longer than a record may be
	{TLS{}, "\x16\x02", NoMatch},                 // not TLS's major version
	{TLS{}, "\x16\x03\x01\x00\x01\x02", NoMatch}, // a ServerHello
	{TLS{}, "\x17\x03\x03", NoMatch},
	{TLS{}, sshBanner, NoMatch},
	{TLS{}, httpGet, NoMatch},
}

func TestProbes(t *testing.T) {
	for _, c := range probeCases {
		if got := c.probe.Check([]byte(c.in)); got != c.want {
			t.Errorf("%T%+v on %q: %v, want %v", c.probe, c.probe, c.in, got, c.want)
		}
	}
}

// TestProbesByteByByte feeds every case one byte at a time: the first
// decision must be the decision on the whole input.
func TestProbesByteByByte(t *testing.T) {
	for _, c := range probeCases {
		if _, isRegex := c.probe.(Regex); isRegex {
			continue // a regex judges whatever has arrived at Min bytes, by design
		}
		if got, at := byteByByte(c.probe, []byte(c.in)); got != c.want {
			t.Errorf("%T%+v on %q byte by byte: %v after %d bytes, want %v", c.probe, c.probe, c.in, got, at, c.want)
		}
	}
}

func TestTLSHandBuilt(t *testing.T) {
	withExt := func(exts ...[]byte) []byte { return hello(bytes.Join(exts, nil)) }
	sni := func(name string) []byte { return ext(0, vec16(append([]byte{0}, vec16([]byte(name))...))) }
	alpn := func(ps ...string) []byte {
		var list []byte
		for _, p := range ps {
			list = append(list, byte(len(p)))
			list = append(list, p...)
		}
		return ext(16, vec16(list))
	}
	cases := []struct {
		name string
		in   []byte
		sni  string
		want Verdict
	}{
		{"no extensions (TLS 1.0 style)", record(handshake(helloBody(nil, false))), "", Match},
		{"empty extension block", withExt(), "", Match},
		{"sni", withExt(sni("zlonk.example.com")), "zlonk.example.com", Match},
		{"sni and alpn", withExt(ext(0xff01, []byte{0}), sni("a.b"), alpn("h2")), "a.b", Match},
		{"sni of another name type first", withExt(ext(0, vec16(append([]byte{1, 0, 1, 'x', 0}, vec16([]byte("a.b"))...)))), "a.b", Match},
		{"empty sni list", withExt(ext(0, vec16(nil))), "", NoMatch},
		{"sni longer than its extension", withExt(ext(0, []byte{0, 9, 0, 0, 3, 'a'})), "", NoMatch},
		{"trailing bytes in sni extension", withExt(ext(0, append(vec16(append([]byte{0}, vec16([]byte("a"))...)), 0))), "", NoMatch},
		{"empty alpn name", withExt(ext(16, vec16([]byte{0}))), "", NoMatch},
		{"extension overruns", withExt([]byte{0, 5, 0, 9, 1}), "", NoMatch},
		{"bytes after extensions", record(handshake(append(helloBody(nil, true), 0))), "", NoMatch},
		{"session id too long", record(handshake(helloBodyWith(33))), "", NoMatch},
		{"handshake shorter than its body", record([]byte{1, 0, 0, 1, 3}), "", NoMatch},
		{"two messages in one record", record(append(handshake(helloBody(nil, false)), 20, 0, 0, 0)), "", Match},
		{"not a ClientHello", record([]byte{2, 0, 0, 0}), "", NoMatch},
	}
	for _, c := range cases {
		h, got := parseClientHello(c.in)
		if got != c.want || h.sni != c.sni {
			t.Errorf("%s: %v sni=%q, want %v sni=%q", c.name, got, h.sni, c.want, c.sni)
		}
		if got, _ := byteByByte(TLS{}, c.in); got != c.want {
			t.Errorf("%s byte by byte: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestProbeList(t *testing.T) {
	banner := []byte(sshBanner)
	cases := []struct {
		name  string
		list  Probes
		in    []byte
		index int
		want  Verdict
	}{
		{"first match wins", Probes{List: []Probe{Any{}, SSH{}}}, banner, 0, Match},
		{"skips no-match", Probes{List: []Probe{TLS{}, HTTP{}, SSH{}, Any{}}}, banner, 2, Match},
		{"a later match waits for an undecided earlier probe",
			Probes{List: []Probe{HTTP{}, Any{}}}, []byte("GET / HT"), -1, NeedMore},
		{"none match", Probes{List: []Probe{TLS{}, SSH{}}}, []byte("GET /"), -1, NoMatch},
		{"empty list", Probes{}, banner, -1, NoMatch},
		{"nothing yet", Probes{List: []Probe{Any{}}}, nil, -1, NeedMore},
		{"gives up at Max bytes", Probes{List: []Probe{HTTP{}, Any{}}, Max: 8}, []byte("GET /abcdefgh"), -1, NoMatch},
		{"decides below Max", Probes{List: []Probe{HTTP{}}, Max: 16}, []byte("GET / HTTP/1.1\n"), 0, Match},
	}
	for _, c := range cases {
		if i, v := c.list.Check(c.in); i != c.index || v != c.want {
			t.Errorf("%s: %d %v, want %d %v", c.name, i, v, c.index, c.want)
		}
	}
}

// TestProbeListByteByByte runs a full list over real openings one byte at
// a time: each is routed to its own probe, after the same bytes as whole.
func TestProbeListByteByByte(t *testing.T) {
	list := Probes{List: []Probe{
		TLS{SNI: []string{"*.example.com"}}, TLS{}, SSH{}, HTTP{Host: []string{"zowie.*"}}, HTTP{}, Any{},
	}}
	inputs := map[string]int{sshBanner: 2, httpGet: 3, "GET / HTTP/1.1\r\nHost: zlonk\r\n\r\n": 4, "\x00\x01": 5}
	for name, want := range map[string]int{"go-sni-alpn": 0, "go": 1} {
		b, err := os.ReadFile(helloFile(name))
		if err != nil {
			t.Fatal(err)
		}
		inputs[string(b)] = want
	}
	for in, want := range inputs {
		i, v := -1, NeedMore
		for n := 1; n <= len(in) && v == NeedMore; n++ {
			i, v = list.Check([]byte(in[:n]))
		}
		if i != want || v != Match {
			t.Errorf("%.20q byte by byte: probe %d %v, want %d", in, i, v, want)
		}
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*.example.com", "zlonk.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.EXAMPLE.com", "Zlonk.example.COM", true},
		{"z*k.*.com", "zlonk.example.com", true},
		{"z*k", "zlonkzoka", false},
		{"z*k", "zlonkzok", true},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a**b", "ab", true},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.name); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}

// Builders for hand-made ClientHellos.

func record(msg []byte) []byte {
	return append([]byte{22, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func handshake(body []byte) []byte {
	return append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

func hello(exts []byte) []byte { return record(handshake(helloBody(exts, true))) }

func helloBody(exts []byte, withExts bool) []byte {
	b := helloBodyWith(0)
	if withExts {
		b = append(b, vec16(exts)...)
	}
	return b
}

// helloBodyWith returns a ClientHello body up to its compression methods,
// with a session id of sid bytes.
func helloBodyWith(sid int) []byte {
	b := append([]byte{3, 3}, make([]byte, 32)...)
	b = append(b, byte(sid))
	b = append(b, make([]byte, sid)...)
	b = append(b, 0, 2, 0x13, 0x01) // one cipher suite
	return append(b, 1, 0)          // null compression
}

func ext(typ int, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func vec16(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }
