package dual

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// maxFuzzLen keeps a fuzz input's prefix checks (quadratic) fast.
const maxFuzzLen = 1 << 13

// checkPrefixes fails t if a decision p makes on a prefix of b is not the
// decision it makes on b: the property that makes byte-by-byte delivery
// safe. It checks every prefix of short inputs and a spread of long ones.
func checkPrefixes(t *testing.T, p Probe, b []byte) {
	whole := p.Check(b)
	step := max(1, len(b)/256)
	for i := 0; i < len(b); i += step {
		if v := p.Check(b[:i]); v != NeedMore && v != whole {
			t.Fatalf("%T: %v after %d bytes, %v after all %d", p, v, i, whole, len(b))
		}
	}
}

func addSeeds(f *testing.F, extra ...string) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "hello", "*.bin"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(refragment(b, 7))
	}
	for _, c := range probeCases {
		f.Add([]byte(c.in))
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// FuzzTLSProbe checks that the ClientHello parser never panics or reads out
// of bounds, that its verdicts are stable as bytes arrive, and that whenever
// Go's own TLS server accepts a ClientHello the probe both matches it and
// reads the same server name and protocols.
func FuzzTLSProbe(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzLen {
			return
		}
		probe := TLS{SNI: []string{"*.example.com"}, ALPN: []string{"h2"}}
		checkPrefixes(t, TLS{}, b)
		checkPrefixes(t, probe, b)
		info := goClientHello(b)
		if info == nil || !majorVersion3(b) {
			return // the probe, unlike crypto/tls, insists on TLS's major version
		}
		h, v := parseClientHello(b)
		if v != Match {
			t.Fatalf("crypto/tls read a ClientHello (sni %q) where the probe says %v", info.ServerName, v)
		}
		if h.sni != info.ServerName || !slices.Equal(h.alpn, info.SupportedProtos) {
			t.Fatalf("probe read sni=%q alpn=%q, crypto/tls sni=%q alpn=%q", h.sni, h.alpn, info.ServerName, info.SupportedProtos)
		}
	})
}

// majorVersion3 reports whether every whole record in b has major version 3.
func majorVersion3(b []byte) bool {
	for len(b) >= recordHeaderLen {
		if b[1] != 3 {
			return false
		}
		b = b[min(len(b), recordHeaderLen+(int(b[3])<<8|int(b[4]))):]
	}
	return true
}

var errSeen = errors.New("seen")

// goClientHello returns what crypto/tls's server reads from b as a
// ClientHello, or nil if it rejects it.
func goClientHello(b []byte) *tls.ClientHelloInfo {
	var info *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		info = h
		return nil, errSeen
	}}
	_ = tls.Server(&replayConn{r: strings.NewReader(string(b))}, cfg).Handshake()
	return info
}

// replayConn is a net.Conn that reads a fixed input and swallows writes.
type replayConn struct{ r io.Reader }

func (c *replayConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHTTPProbe checks the request-line and Host parsers for panics and
// for verdicts that change as bytes arrive.
func FuzzHTTPProbe(f *testing.F) {
	addSeeds(f, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "POST /x HTTP/1.0\nhost: [::1]:80\n\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzLen {
			return
		}
		checkPrefixes(t, HTTP{}, b)
		checkPrefixes(t, HTTP{Host: []string{"*.example.com", "::1"}}, b)
	})
}

// FuzzProbes runs a whole list, with a small byte limit, checking that its
// answer does not depend on how the bytes were split.
func FuzzProbes(f *testing.F) {
	addSeeds(f, sshBanner)
	list := Probes{Max: 600, List: []Probe{
		TLS{SNI: []string{"*.example.com"}}, TLS{}, SSH{}, HTTP{Host: []string{"zowie.*"}}, HTTP{},
		Regex{RE: regexp.MustCompile(`^\x00\x00`), Min: 2}, Any{},
	}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzLen {
			return
		}
		wi, wv := list.Check(b)
		for n := 1; n < len(b); n++ {
			if i, v := list.Check(b[:n]); v != NeedMore {
				if i != wi || v != wv {
					t.Fatalf("after %d bytes probe %d %v, after all %d probe %d %v", n, i, v, len(b), wi, wv)
				}
				return
			}
		}
	})
}

// FuzzGlob compares globMatch with the same pattern as a regular expression.
func FuzzGlob(f *testing.F) {
	f.Add("*.example.com", "zlonk.example.com")
	f.Add("z*k*", "zlonkzok")
	f.Add("**a*", "AAA")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 256 || !utf8.ValidString(pattern) || !utf8.ValidString(name) {
			return // the regexp reference works on runes, the glob on bytes
		}
		parts := strings.Split(asciiLower(pattern), "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile(`(?s)^` + strings.Join(parts, ".*") + `$`)
		if got, want := globMatch(pattern, name), re.MatchString(asciiLower(name)); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, regexp says %v", pattern, name, got, want)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}
