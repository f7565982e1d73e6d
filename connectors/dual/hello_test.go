package dual

import (
	"context"
	"crypto/tls"
	"flag"
	"github.com/nproxy/nproxy/nproxytest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "capture the ClientHellos in testdata/hello again")

// helloCase is a real client and what its ClientHello must say.
type helloCase struct {
	name string
	sni  string
	alpn []string
	dial func(ctx context.Context, addr string) // sends a ClientHello to addr
}

const testSNI = "zlonk.example.com"

var helloCases = []helloCase{
	{name: "openssl", dial: openssl()},
	{name: "openssl-sni", sni: testSNI, dial: openssl("-servername", testSNI)},
	{name: "openssl-alpn", alpn: []string{"h2", "http/1.1"}, dial: openssl("-alpn", "h2,http/1.1")},
	{name: "openssl-sni-alpn-tls12", sni: testSNI, alpn: []string{"http/1.1"},
		dial: openssl("-tls1_2", "-servername", testSNI, "-alpn", "http/1.1")},
	{name: "go", dial: goTLS(&tls.Config{InsecureSkipVerify: true})},
	{name: "go-sni-alpn", sni: testSNI, alpn: []string{"h2", "http/1.1"},
		dial: goTLS(&tls.Config{ServerName: testSNI, NextProtos: []string{"h2", "http/1.1"}, InsecureSkipVerify: true})},
}

func openssl(args ...string) func(context.Context, string) {
	return func(ctx context.Context, addr string) {
		base := []string{"s_client", "-connect", addr, "-quiet"}
		if !slices.Contains(args, "-servername") {
			base = append(base, "-noservername")
		}
		_ = exec.CommandContext(ctx, "openssl", append(base, args...)...).Run()
	}
}

func goTLS(cfg *tls.Config) func(context.Context, string) {
	return func(ctx context.Context, addr string) {
		var d tls.Dialer
		d.Config = cfg
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
		}
	}
}

// captureHello runs a real client against a listener that keeps the bytes
// up to the end of the ClientHello, and hangs up on it.
func captureHello(t *testing.T, c helloCase) []byte {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); c.dial(ctx, l.Addr().String()) }()
	defer func() { cancel(); <-done }()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if _, v := parseClientHello(got); v != NeedMore {
			return got
		}
		if err != nil {
			t.Fatalf("%s: read after %d bytes: %v", c.name, len(got), err)
		}
	}
}

func helloFile(name string) string { return filepath.Join("testdata", "hello", name+".bin") }

// TestLiveClientHellos checks the hellos that openssl s_client and Go's
// crypto/tls send now, and with -update stores them for the other tests.
func TestLiveClientHellos(t *testing.T) {
	nproxytest.Command(t, "openssl")
	for _, c := range helloCases {
		t.Run(c.name, func(t *testing.T) {
			hello := captureHello(t, c)
			checkHello(t, c, hello)
			if *update {
				if err := os.WriteFile(helloFile(c.name), hello, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestStoredClientHellos(t *testing.T) {
	for _, c := range helloCases {
		t.Run(c.name, func(t *testing.T) {
			hello, err := os.ReadFile(helloFile(c.name))
			if err != nil {
				t.Fatal(err)
			}
			checkHello(t, c, hello)
		})
	}
}

// checkHello verifies what the parser and the TLS probe make of a real
// hello, whole, byte by byte, and re-fragmented into one-byte records.
func checkHello(t *testing.T, c helloCase, hello []byte) {
	t.Helper()
	h, v := parseClientHello(hello)
	if v != Match || h.sni != c.sni || !slices.Equal(h.alpn, c.alpn) {
		t.Fatalf("parsed %v sni=%q alpn=%q, want match sni=%q alpn=%q", v, h.sni, h.alpn, c.sni, c.alpn)
	}
	probes := []struct {
		probe TLS
		want  Verdict
	}{
		{TLS{}, Match},
		{TLS{SNI: []string{"*.EXAMPLE.com"}}, verdictIf(c.sni != "")},
		{TLS{SNI: []string{"zowie.example.com"}}, NoMatch},
		{TLS{ALPN: []string{"h2"}}, verdictIf(slices.Contains(c.alpn, "h2"))},
		{TLS{SNI: []string{"*"}, ALPN: []string{"http/1.1", "h3"}}, verdictIf(c.sni != "" && c.alpn != nil)},
	}
	for _, p := range probes {
		if got, at := byteByByte(p.probe, hello); got != p.want || at != len(hello) {
			t.Errorf("%+v byte by byte: %v after %d bytes, want %v after %d", p.probe, got, at, p.want, len(hello))
		}
		if got := p.probe.Check(refragment(hello, 1)); got != p.want {
			t.Errorf("%+v on one-byte records: %v, want %v", p.probe, got, p.want)
		}
	}
	// A ClientHello and more in one read (TLS 1.3 early data, say) still matches.
	if got := (TLS{}).Check(append(slices.Clip(hello), 0x17, 3, 3, 0, 1, 0)); got != Match {
		t.Errorf("hello followed by a record: %v", got)
	}
}

func verdictIf(match bool) Verdict {
	if match {
		return Match
	}
	return NoMatch
}

// byteByByte feeds b to p one byte more at a time, as a client that sends
// one byte per packet would, and returns the first verdict that is not
// NeedMore with the number of bytes it took.
func byteByByte(p Probe, b []byte) (Verdict, int) {
	for i := 1; i <= len(b); i++ {
		if v := p.Check(b[:i]); v != NeedMore {
			return v, i
		}
	}
	return NeedMore, len(b)
}

// refragment splits the handshake records of b into records of at most n bytes.
func refragment(b []byte, n int) []byte {
	var out []byte
	for len(b) >= recordHeaderLen {
		body := b[recordHeaderLen : recordHeaderLen+(int(b[3])<<8|int(b[4]))]
		for chunk := range slices.Chunk(body, n) {
			out = append(out, b[0], b[1], b[2], byte(len(chunk)>>8), byte(len(chunk)))
			out = append(out, chunk...)
		}
		b = b[recordHeaderLen+len(body):]
	}
	return append(out, b...)
}
