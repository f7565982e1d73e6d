package ssltest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"
)

// Buffered returns c with its reads taken from r, a reader of c: after a
// STARTTLS exchange read line by line, the bytes r read ahead of the
// answer are the peer's first TLS records, and a TLS client or server
// started over c itself would miss them. Its NetConn method returns c,
// as tls.Conn's does.
func Buffered(c net.Conn, r *bufio.Reader) net.Conn {
	return bufferedConn{c, r}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b bufferedConn) NetConn() net.Conn { return b.Conn }

// ClientConfig returns a TLS client configuration that trusts c.CA and
// checks the name localhost, built with crypto/tls alone, so that it does
// not depend on the ssl package's own configuration code under test.
func (c *Certs) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", c.CA)
	}
	return &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

// Lines is one end of a test connection, read line by line through R. The
// bytes R has read ahead stay in R: Buffered(l.Conn, l.R) hands them to
// TLS after a STARTTLS answer.
type Lines struct {
	net.Conn
	R *bufio.Reader
}

// NewLines returns c read line by line, with every read and write on c
// bounded by a 10 s deadline, so that a stalled proxy fails the test
// instead of hanging it.
func NewLines(c net.Conn) *Lines {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &Lines{c, bufio.NewReader(c)}
}

// Expect reads one line and fails t unless it is want.
func (l *Lines) Expect(t testing.TB, want string) {
	t.Helper()
	line, err := l.R.ReadString('\n')
	if line != want {
		t.Fatalf("read %q (%v), want %q", line, err, want)
	}
}
