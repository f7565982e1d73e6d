package ssl

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/loop"
)

// ssl_tcp: TLS on the client side.
func TestScenarioSSLTCP(t *testing.T) {
	checkGoroutines(t)
	certs := ssltest.New(t)
	be := newBackend(t)
	port := freePort(t)
	proxy(t, port, sslIn(certs, port), tcpOut(be.port))
	tc, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)), tlsClientConfig(t, certs))
	if err != nil {
		t.Fatal(err)
	}
	client := newEnd(tc)
	server := be.accept(t)
	rng := seeded(t)
	for _, line := range zlonk {
		relayLine(t, rng, client, server, line)
	}
	client.Close()
	server.expectEOF(t)
	server.Close()
}

// tcp_ssl: TLS on the server side.
func TestScenarioTCPSSL(t *testing.T) {
	checkGoroutines(t)
	certs := ssltest.New(t)
	be := newBackend(t)
	port := freePort(t)
	proxy(t, port, tcpIn(port), sslOut(certs, be.port))
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := newEnd(tls.Server(accept(t, be.l), tlsServerConfig(t, certs)))
	rng := seeded(t)
	for _, line := range zlonk {
		relayLine(t, rng, client, server, line)
	}
	client.Close()
	server.expectEOF(t)
	server.Close()
}

// starttls is the hook of Net::Proxy's ctssl tests: it strips STARTTLS,
// answers OK and upgrades the socket.
func starttls(data []byte, s *loop.Socket) []byte {
	if rest, ok := bytes.CutPrefix(data, []byte("STARTTLS\n")); ok {
		s.Write([]byte("OK\n"))
		Upgrade(s, rest)
		return nil
	}
	return data
}

// ctssl_tcp: the client starts in clear and asks for TLS; the STARTTLS
// line is not forwarded and no line is lost across the switch.
func TestScenarioCTSSLTCP(t *testing.T) {
	checkGoroutines(t)
	certs := ssltest.New(t)
	be := newBackend(t)
	port := freePort(t)
	in := sslIn(certs, port)
	in.StartCleartext, in.Hook = true, starttls
	proxy(t, port, in, tcpOut(be.port))
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := be.accept(t)
	rng := seeded(t)
	for _, line := range zlonk[:3] {
		relayLine(t, rng, client, server, line)
	}
	io.WriteString(client, "STARTTLS\n")
	client.expect(t, "OK\n")
	client.upgrade(t, tlsClientConfig(t, certs))
	for _, line := range zlonk[3:] {
		relayLine(t, rng, client, server, line)
	}
	client.Close()
	server.expectEOF(t)
}

// tcp_ctssl: the server asks for TLS, twice; the second request, on a
// socket already under TLS, is answered and changes nothing.
func TestScenarioTCPCTSSL(t *testing.T) {
	checkGoroutines(t)
	certs := ssltest.New(t)
	be := newBackend(t)
	port := freePort(t)
	out := sslOut(certs, be.port)
	out.Hostname = "localhost"
	out.StartCleartext, out.Hook = true, starttls
	logs := proxy(t, port, tcpIn(port), out)
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := be.accept(t)
	rng := seeded(t)
	for i, line := range zlonk {
		if i == 2 || i == 4 {
			io.WriteString(server, "STARTTLS\n")
			server.expect(t, "OK\n")
			if i == 2 {
				server.upgrade(t, tlsServerConfig(t, certs))
			}
		}
		relayLine(t, rng, client, server, line)
	}
	logs.waitLog(t, "is already TLS")
	client.Close()
	server.expectEOF(t)
}
