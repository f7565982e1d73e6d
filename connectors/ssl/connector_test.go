package ssl

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// ssl_tcp: TLS on the client side.
func TestScenarioSSLTCP(t *testing.T) {
	certs, be, port := setup(t)
	proxy(t, sslIn(certs, port), tcpOut(be.port))
	tc, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)), tlsClientConfig(t, certs))
	if err != nil {
		t.Fatal(err)
	}
	client := newEnd(tc)
	server := be.accept(t)
	rng := seeded(t)
	converse(t, rng, client, server, zlonk)
	server.Close()
}

// tcp_ssl: TLS on the server side.
func TestScenarioTCPSSL(t *testing.T) {
	certs, be, port := setup(t)
	proxy(t, tcpIn(port), sslOut(certs, be.port))
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := newEnd(tls.Server(accept(t, be.l), tlsServerConfig(t, certs)))
	rng := seeded(t)
	converse(t, rng, client, server, zlonk)
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
	certs, be, port := setup(t)
	in := sslIn(certs, port)
	in.StartCleartext, in.Hook = true, starttls
	proxy(t, in, tcpOut(be.port))
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := be.accept(t)
	rng := seeded(t)
	relayLines(t, rng, client, server, zlonk[:3])
	io.WriteString(client, "STARTTLS\n")
	client.Expect(t, "OK\n")
	client.upgrade(t, tlsClientConfig(t, certs))
	converse(t, rng, client, server, zlonk[3:])
}

// tcp_ctssl: the server asks for TLS, twice; the second request, on a
// socket already under TLS, is answered and changes nothing.
func TestScenarioTCPCTSSL(t *testing.T) {
	certs, be, port := setup(t)
	out := sslOut(certs, be.port)
	out.Hostname = "localhost"
	out.StartCleartext, out.Hook = true, starttls
	logs := proxy(t, tcpIn(port), out)
	client := newEnd(dial(t, net.JoinHostPort("127.0.0.1", itoa(port))))
	server := be.accept(t)
	rng := seeded(t)
	for i, line := range zlonk {
		if i == 2 || i == 4 {
			io.WriteString(server, "STARTTLS\n")
			server.Expect(t, "OK\n")
			if i == 2 {
				server.upgrade(t, tlsServerConfig(t, certs))
			}
		}
		relayLine(t, rng, client, server, line)
	}
	logs.WaitFor(t, "is already TLS")
	client.Close()
	server.expectEOF(t)
}

// pipelined sends STARTTLS and the ClientHello in one write, without
// waiting for the answer, and skips the answer before TLS reads.
type pipelined struct {
	net.Conn
	sent, skipped bool
}

func (p *pipelined) Write(b []byte) (int, error) {
	if !p.sent {
		p.sent = true
		_, err := p.Conn.Write(append([]byte("STARTTLS\n"), b...))
		return len(b), err
	}
	return p.Conn.Write(b)
}

func (p *pipelined) Read(b []byte) (int, error) {
	if !p.skipped {
		p.skipped = true
		ok := make([]byte, 3)
		if _, err := io.ReadFull(p.Conn, ok); err != nil || string(ok) != "OK\n" {
			return 0, fmt.Errorf("answer %q, %v", ok, err)
		}
	}
	return p.Conn.Read(b)
}

// A client that does not wait for the answer to STARTTLS: the hook hands
// the ClientHello that came with the request to Upgrade, and nothing is lost.
func TestUpgradeKeepsEarlyBytes(t *testing.T) {
	certs, be, port := setup(t)
	in := sslIn(certs, port)
	in.StartCleartext, in.Hook = true, starttls
	proxy(t, in, tcpOut(be.port))
	raw := dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	client := newEnd(tls.Client(&pipelined{Conn: raw}, tlsClientConfig(t, certs)))
	server := be.accept(t)
	// The client speaks first: anything the server said before would go
	// out in clear, ahead of the upgrade.
	io.WriteString(client, zlonk[0])
	server.Expect(t, zlonk[0])
	rng := seeded(t)
	converse(t, rng, client, server, zlonk[1:])
}

// A real STARTTLS conversation: openssl s_client -starttls smtp talks to a
// plain SMTP server through an ssl in whose hook answers the client's
// STARTTLS itself and upgrades, as stunnel's protocol option does.
func TestSMTPStartTLS(t *testing.T) {
	certs, be, port := setup(t)
	in := sslIn(certs, port)
	in.StartCleartext = true
	in.Hook = func(data []byte, s *loop.Socket) []byte {
		if rest, ok := bytes.CutPrefix(data, []byte("STARTTLS\r\n")); ok {
			s.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
			Upgrade(s, rest)
			return nil
		}
		return data
	}
	proxy(t, in, tcpOut(be.port))
	_, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", net.JoinHostPort("127.0.0.1", itoa(port)), "-starttls", "smtp",
		"-CAfile", certs.CA, "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-no_ign_eof", "-crlf")
	server := be.accept(t)
	io.WriteString(server, "220 mail.example ESMTP\r\n")
	if line, _ := server.R.ReadString('\n'); !strings.HasPrefix(line, "EHLO ") {
		t.Fatalf("the client said %q", line)
	}
	io.WriteString(server, "250-mail.example\r\n250 STARTTLS\r\n")
	// s_client now sends STARTTLS, which the hook answers, then
	// handshakes; what it sends next arrives in clear at the server.
	io.WriteString(stdin, "EHLO again\n")
	server.Expect(t, "EHLO again\r\n")
	io.WriteString(server, "250 mail.example\r\n")
	if line, err := stdout.ReadString('\n'); line != "250 mail.example\r\n" {
		t.Fatalf("s_client read %q, %v", line, err)
	}
	stdin.Close()
	server.expectEOF(t)
}
