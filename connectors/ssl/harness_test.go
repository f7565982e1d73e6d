package ssl

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// proxy runs one proxy from in to out in Mainloop(0) until the test ends,
// and returns its log (verbosity 1: notices).
func proxy(t *testing.T, in connectors.In, out connectors.Out) *nproxytest.LogBuffer {
	t.Helper()
	logs := nproxytest.CaptureLog(t, 1)
	nproxytest.Start(t, 0, nproxy.New(in, out))
	return logs
}

// end is one end of a relayed connection, read line by line.
type end struct{ *ssltest.Lines }

func newEnd(c net.Conn) *end { return &end{ssltest.NewLines(c)} }

// upgrade puts the end under TLS from now on, as the server if cfg has a
// certificate, else as the client.
func (e *end) upgrade(t *testing.T, cfg *tls.Config) {
	t.Helper()
	conn := ssltest.Buffered(e.Conn, e.R)
	tc := tls.Client(conn, cfg)
	if cfg.GetCertificate != nil {
		tc = tls.Server(conn, cfg)
	}
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	e.Conn, e.R = tc, bufio.NewReader(tc)
}

// relayLine sends line from one end, at random, and reads it at the other,
// as Net::Proxy's tests do.
func relayLine(t *testing.T, rng *rand.Rand, a, b *end, line string) {
	t.Helper()
	if rng.Intn(2) == 0 {
		a, b = b, a
	}
	if _, err := io.WriteString(a, line); err != nil {
		t.Fatal(err)
	}
	b.Expect(t, line)
}

// relayLines relays each of lines as relayLine does.
func relayLines(t *testing.T, rng *rand.Rand, a, b *end, lines []string) {
	t.Helper()
	for _, line := range lines {
		relayLine(t, rng, a, b, line)
	}
}

// converse relays lines, then closes a and expects EOF at b.
func converse(t *testing.T, rng *rand.Rand, a, b *end, lines []string) {
	t.Helper()
	relayLines(t, rng, a, b, lines)
	a.Close()
	b.expectEOF(t)
}

// expectEOF reads the end until EOF, which must come within 5 s.
func (e *end) expectEOF(t *testing.T) {
	t.Helper()
	e.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(e.R)
	if err != nil || len(rest) > 0 {
		t.Fatalf("want EOF, got %q, %v", rest, err)
	}
}

// backend accepts one connection on a fresh port of 127.0.0.1.
type backend struct {
	l    net.Listener
	port int
}

func newBackend(t *testing.T) *backend {
	l := nproxytest.Listener(t)
	return &backend{l, l.Addr().(*net.TCPAddr).Port}
}

func (b *backend) accept(t *testing.T) *end { return newEnd(accept(t, b.l)) }

// setup starts what most proxy tests need: the check that no engine
// goroutine outlives the test, certificates, a backend, and a free port
// for the proxy.
func setup(t *testing.T) (*ssltest.Certs, *backend, int) {
	ssltest.CheckGoroutines(t)
	return ssltest.New(t), newBackend(t), nproxytest.FreePort(t)
}

func sslIn(certs *ssltest.Certs, port int) *In {
	return &In{Host: "127.0.0.1", Port: port, Params: Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyMode: -1}}
}

func sslOut(certs *ssltest.Certs, port int) *Out {
	return &Out{Host: "127.0.0.1", Port: port, Params: Params{CAFile: certs.CA, VerifyMode: -1}}
}

func tcpIn(port int) *tcp.In   { return &tcp.In{Host: "127.0.0.1", Port: port} }
func tcpOut(port int) *tcp.Out { return &tcp.Out{Host: "127.0.0.1", Port: port} }

func tlsClientConfig(t *testing.T, certs *ssltest.Certs) *tls.Config {
	return clientConfig(t, Params{CAFile: certs.CA, Hostname: "localhost", VerifyMode: 1})
}

func tlsServerConfig(t *testing.T, certs *ssltest.Certs) *tls.Config {
	return serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyMode: -1})
}

var zlonk = []string{
	"oscar delta sierra echo papa\n",
	"Laurent_Fignon Henri_Pelissier Lucien_Petit_Breton Firmin_Lambot\n",
	"Toronto London Herzliya Melbourne Munich\n",
	"holy_icepicks holy_corpusles holy_Luthor_Burbank holy_hyperdermics\n",
	"Woody_Long Alicia_Rio Dorothy_Le_May Janine_Lindemulder Barbara_Summer\n",
}

func seeded(t *testing.T) *rand.Rand {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewSource(seed))
}

func itoa(n int) string { return fmt.Sprint(n) }
