package ssltest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
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
