package ssl

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// Session resumption is on by default on the in side: openssl s_client
// saves the session of a first connection (-sess_out) and resumes it on a
// second one (-sess_in), with TLS 1.2 and 1.3 tickets alike. SSL_no_tickets=1
// turns it off: s_client gets no session to save (or cannot resume it), and
// a Go client with a session cache gets none to offer.
func TestResumption(t *testing.T) {
	certs := ssltest.New(t)
	for _, off := range []bool{false, true} {
		for _, v := range []string{"-tls1_2", "-tls1_3"} {
			t.Run(fmt.Sprintf("SSL_no_tickets=%v%s", off, v), func(t *testing.T) {
				ssltest.CheckGoroutines(t)
				port := nproxytest.FreePort(t)
				in := sslIn(certs, port)
				in.NoTickets = off
				proxy(t, in, tcpOut(echoBackend(t, nil)))
				sess := filepath.Join(t.TempDir(), "session.pem")
				if got := sClientSession(t, certs, port, v, "-sess_out", sess); !strings.HasPrefix(got, "New,") {
					t.Fatalf("first connection: %q, want a new session", got)
				}
				if off {
					checkNotResumed(t, certs, port, v, sess)
					return
				}
				if _, err := os.Stat(sess); err != nil {
					t.Fatalf("s_client saved no session (no ticket came): %v", err)
				}
				if got := sClientSession(t, certs, port, v, "-sess_in", sess); !strings.HasPrefix(got, "Reused,") {
					t.Fatalf("second connection: %q, want the session reused", got)
				}
			})
		}
	}
}

// checkNotResumed checks that neither s_client's saved session, if it
// saved one, nor a Go client's session cache resumes a session.
func checkNotResumed(t *testing.T, certs *ssltest.Certs, port int, version, sess string) {
	t.Helper()
	if _, err := os.Stat(sess); err == nil {
		if got := sClientSession(t, certs, port, version, "-sess_in", sess); !strings.HasPrefix(got, "New,") {
			t.Fatalf("with SSL_no_tickets: %q, want a new session", got)
		}
	}
	cfg := tlsClientConfig(t, certs)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	cfg.MaxVersion = map[string]uint16{"-tls1_2": tls.VersionTLS12, "-tls1_3": tls.VersionTLS13}[version]
	for i := range 2 {
		c, err := tls.Dial("tcp", fmt.Sprint("127.0.0.1:", port), cfg)
		if err != nil {
			t.Fatal(err)
		}
		echoed(t, c)
		if c.ConnectionState().DidResume {
			t.Fatalf("connection %d resumed with SSL_no_tickets", i+1)
		}
	}
}

// echoed checks that c's line comes back (the tickets, sent after the
// handshake, were read before it), then closes c.
func echoed(t *testing.T, c *tls.Conn) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("resume me\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "resume me\n" {
		t.Fatalf("echo %q: %v", line, err)
	}
}

// sClientSession runs openssl s_client through the proxy on port: one line
// echoed (once it is back, the session tickets sent after the handshake
// were read), then its end; it returns s_client's "New, ..." or
// "Reused, ..." line.
func sClientSession(t *testing.T, certs *ssltest.Certs, port int, args ...string) string {
	t.Helper()
	args = append([]string{"s_client", "-connect", fmt.Sprint("127.0.0.1:", port), "-CAfile", certs.CA,
		"-verify_return_error", "-verify_hostname", "localhost"}, args...)
	cmd, stdin, stdout := ssltest.OpenSSL(t, args...)
	stdin.Write([]byte("resume me\n"))
	var session string
	for {
		line, err := stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("s_client ended before the echo: %v (session %q)", err, session)
		}
		if strings.HasPrefix(line, "New,") || strings.HasPrefix(line, "Reused,") {
			session = strings.TrimSpace(line)
		}
		if line == "resume me\n" {
			break
		}
	}
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("s_client: %v", err)
	}
	if session == "" {
		t.Fatal("s_client said neither New nor Reused")
	}
	return session
}
