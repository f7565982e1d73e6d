package ssl

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"github.com/nproxy/nproxy/nproxytest"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

// opensslVersions are the protocol versions tested against openssl, with the
// option that makes it speak each.
var opensslVersions = []struct {
	flag string
	want uint16
}{{"-tls1_2", tls.VersionTLS12}, {"-tls1_3", tls.VersionTLS13}}

// accept waits at most 5 s for one connection.
func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lines returns n distinct text lines.
func lines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "line %05d %s\n", i, strings.Repeat("abcdefghij", 6))
	}
	return b.Bytes()
}

func serverConfig(t *testing.T, p Params) *tls.Config {
	t.Helper()
	cfg, err := p.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientConfig(t *testing.T, p Params) *tls.Config {
	t.Helper()
	cfg, err := p.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The engine as a server echoes what openssl s_client sends, over TLS 1.2
// and 1.3, and sees its close_notify as the end of the stream.
func TestServerWithOpenSSLClient(t *testing.T) {
	certs := ssltest.New(t)
	for _, v := range opensslVersions {
		t.Run(v.flag, func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			cfg := serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
			l := nproxytest.Listener(t)
			cmd, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", l.Addr().String(), v.flag,
				"-CAfile", certs.CA, "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-no_ign_eof")
			c := accept(t, l)
			done := make(chan result, 1)
			go func() {
				done <- runStandIn(t, c, func(n func()) *tlsengine.Engine { return tlsengine.NewServer(cfg, tlsengine.Options{}, n) }, &app{echo: true}, 20*time.Second)
			}()
			data := lines(3000) // 210 kB: many records, full queues
			go func() { stdin.Write(data) }()
			echoed := make([]byte, len(data))
			if _, err := io.ReadFull(stdout, echoed); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if !bytes.Equal(echoed, data) {
				t.Fatal("the echo differs from what was sent")
			}
			stdin.Close() // s_client sends close_notify and quits
			r := <-done
			if r.err != nil || r.timeout || !r.app.gotEOF {
				t.Fatalf("stand-in ended with err=%v timeout=%v eof=%v", r.err, r.timeout, r.app.gotEOF)
			}
			if r.version != v.want {
				t.Errorf("negotiated %x, want %x", r.version, v.want)
			}
			cmd.Wait()
		})
	}
}

// sServer starts openssl s_server -rev for one connection and returns its
// address once it listens.
func sServer(t *testing.T, args ...string) string {
	t.Helper()
	l := nproxytest.Listener(t)
	addr := l.Addr().String()
	l.Close() // s_server takes the port; a reuse by someone else in between fails the test loudly
	args = append([]string{"s_server", "-accept", addr, "-rev", "-naccept", "1"}, args...)
	_, _, stdout := ssltest.OpenSSL(t, args...)
	for {
		line, err := stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("s_server did not start: %v", err)
		}
		if strings.HasPrefix(line, "ACCEPT") {
			go io.Copy(io.Discard, stdout)
			return addr
		}
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reversed(data []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		r := []byte(strings.TrimSuffix(string(line), "\n"))
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		b.Write(r)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// The engine as a client verifies openssl s_server's certificate and talks
// to it over TLS 1.2 and 1.3, then closes with close_notify.
func TestClientWithOpenSSLServer(t *testing.T) {
	certs := ssltest.New(t)
	for _, v := range opensslVersions {
		t.Run(v.flag, func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			addr := sServer(t, v.flag, "-cert", certs.ServerCert, "-key", certs.ServerKey)
			cfg := clientConfig(t, Params{CAFile: certs.CA, Hostname: "localhost", VerifyMode: -1})
			data := lines(2000)
			a := &app{out: append([]byte(nil), data...), wantGot: len(data), closeAfter: true}
			r := runStandIn(t, dial(t, addr), func(n func()) *tlsengine.Engine { return tlsengine.NewClient(cfg, tlsengine.Options{}, n) }, a, 20*time.Second)
			if r.err != nil || r.timeout {
				t.Fatalf("stand-in ended with err=%v timeout=%v", r.err, r.timeout)
			}
			if !bytes.Equal(a.got, reversed(data)) {
				t.Fatalf("got %d bytes, not the %d reversed lines sent", len(a.got), len(data))
			}
			if r.version != v.want {
				t.Errorf("negotiated %x, want %x", r.version, v.want)
			}
		})
	}
}

// A client certificate is sent when the server asks for one, and without
// it the session fails.
func TestClientCertificate(t *testing.T) {
	certs := ssltest.New(t)
	for _, withCert := range []bool{true, false} {
		t.Run(fmt.Sprint("cert=", withCert), func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			addr := sServer(t, "-cert", certs.ServerCert, "-key", certs.ServerKey, "-Verify", "1", "-CAfile", certs.CA, "-verify_return_error")
			p := Params{CAFile: certs.CA, Hostname: "localhost", VerifyMode: 1}
			if withCert {
				p.CertFile, p.KeyFile = certs.ClientCert, certs.ClientKey
			}
			a := &app{out: []byte("hello\n"), wantGot: 6}
			r := runStandIn(t, dial(t, addr), func(n func()) *tlsengine.Engine {
				return tlsengine.NewClient(clientConfig(t, p), tlsengine.Options{}, n)
			}, a, 10*time.Second)
			switch {
			case withCert && (r.err != nil || string(a.got) != "olleh\n"):
				t.Fatalf("err=%v got=%q", r.err, a.got)
			case !withCert && (r.err == nil || !strings.Contains(r.err.Error(), "certificate required")):
				t.Fatalf("want a 'certificate required' failure, got err=%v timeout=%v", r.err, r.timeout)
			}
		})
	}
}

// The client side refuses a server it cannot verify, with a message that
// says why.
func TestClientRefusesBadServer(t *testing.T) {
	certs := ssltest.New(t)
	cases := []struct {
		name, cert, key, host, want string
	}{
		{"unknown CA", certs.OtherCert, certs.OtherKey, "localhost", "unknown authority"},
		{"expired", certs.ExpiredCert, certs.ExpiredKey, "localhost", "expired"},
		{"wrong name", certs.ServerCert, certs.ServerKey, "wrong.example", "not wrong.example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			addr := sServer(t, "-cert", c.cert, "-key", c.key)
			cfg := clientConfig(t, Params{CAFile: certs.CA, Hostname: c.host, VerifyMode: -1})
			a := &app{out: []byte("hello\n"), wantGot: 6}
			r := runStandIn(t, dial(t, addr), func(n func()) *tlsengine.Engine { return tlsengine.NewClient(cfg, tlsengine.Options{}, n) }, a, 10*time.Second)
			if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
				t.Fatalf("want a failure about %q, got err=%v timeout=%v", c.want, r.err, r.timeout)
			}
			if r.state&tlsengine.Handshaken != 0 {
				t.Error("the handshake is reported complete")
			}
		})
	}
}

// The server side asks for client certificates with SSL_verify_mode 3 and
// refuses a client without one.
func TestServerRequiresClientCertificate(t *testing.T) {
	certs := ssltest.New(t)
	for _, withCert := range []bool{true, false} {
		t.Run(fmt.Sprint("cert=", withCert), func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			cfg := serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA, VerifyMode: 3})
			l := nproxytest.Listener(t)
			args := []string{"s_client", "-connect", l.Addr().String(), "-CAfile", certs.CA, "-quiet", "-no_ign_eof", "-tls1_2"}
			if withCert {
				args = append(args, "-cert", certs.ClientCert, "-key", certs.ClientKey)
			}
			_, stdin, stdout := ssltest.OpenSSL(t, args...)
			c := accept(t, l)
			done := make(chan result, 1)
			go func() {
				done <- runStandIn(t, c, func(n func()) *tlsengine.Engine { return tlsengine.NewServer(cfg, tlsengine.Options{}, n) }, &app{echo: true}, 10*time.Second)
			}()
			stdin.Write([]byte("ping\n"))
			line, _ := stdout.ReadString('\n')
			if withCert {
				if line != "ping\n" {
					t.Fatalf("echo %q", line)
				}
				stdin.Close()
			}
			r := <-done
			switch {
			case withCert && r.err != nil:
				t.Fatal(r.err)
			case !withCert && (r.err == nil || !strings.Contains(r.err.Error(), "didn't provide a certificate")):
				t.Fatalf("want a refusal, got err=%v timeout=%v", r.err, r.timeout)
			}
		})
	}
}
