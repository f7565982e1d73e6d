// Package ssltest makes the certificates TLS tests need, in a test's
// temporary directory:
//
//	c := ssltest.New(t)
//	// c.CA, c.ServerCert/c.ServerKey (127.0.0.1, ::1, localhost),
//	// c.ExpiredCert/c.ExpiredKey, c.ClientCert/c.ClientKey,
//	// c.OtherCert/c.OtherKey (signed by another CA)
//
// Keys are ECDSA P-256, which is quick to generate and every OpenSSL takes.
package ssltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Certs holds the paths of PEM files written by New.
type Certs struct {
	// CA is the certificate of the authority that signed the others.
	CA string
	// ServerCert and ServerKey are valid for 127.0.0.1, ::1 and localhost.
	ServerCert, ServerKey string
	// ExpiredCert and ExpiredKey are a server certificate that expired.
	ExpiredCert, ExpiredKey string
	// ClientCert and ClientKey are a client certificate.
	ClientCert, ClientKey string
	// OtherCert and OtherKey are a server certificate from an unknown CA.
	OtherCert, OtherKey string
	// Dir is the directory that holds them.
	Dir string
}

// issuer signs certificates.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New writes a fresh CA and the certificates of Certs into t.TempDir().
func New(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	c := &Certs{Dir: dir}
	ca := newCA(t, "nproxy test CA")
	other := newCA(t, "unknown CA")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.cert.Raw)
	c.CA = filepath.Join(dir, "ca.pem")
	now := time.Now()
	server := leaf{name: "server", server: true, from: now.Add(-time.Hour), to: now.Add(24 * time.Hour)}
	c.ServerCert, c.ServerKey = ca.issue(t, dir, server)
	expired := leaf{name: "expired", server: true, from: now.Add(-48 * time.Hour), to: now.Add(-24 * time.Hour)}
	c.ExpiredCert, c.ExpiredKey = ca.issue(t, dir, expired)
	client := leaf{name: "client", from: now.Add(-time.Hour), to: now.Add(24 * time.Hour)}
	c.ClientCert, c.ClientKey = ca.issue(t, dir, client)
	server.name = "other"
	c.OtherCert, c.OtherKey = other.issue(t, dir, server)
	return c
}

func newCA(t testing.TB, name string) issuer {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-72 * time.Hour),
		NotAfter:              time.Now().Add(72 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{cert, key}
}

// leaf describes a certificate to issue.
type leaf struct {
	name     string
	server   bool
	from, to time.Time
}

// issue writes name.pem and name-key.pem and returns their paths.
func (ca issuer) issue(t testing.TB, dir string, l leaf) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: l.name},
		NotBefore:    l.from,
		NotAfter:     l.to,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if l.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, l.name+".pem")
	keyFile = filepath.Join(dir, l.name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// EngineGoroutines returns the stacks of the TLS engine goroutines still
// running, for leak checks: empty when none is left.
func EngineGoroutines() string {
	buf := make([]byte, 1<<20)
	var left []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "tlsengine.(*Engine)") {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}

// CheckGoroutines fails t if engine goroutines are still running 3 s after
// it ends.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for EngineGoroutines() != "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if left := EngineGoroutines(); left != "" {
			t.Errorf("engine goroutines left:\n%s", left)
		}
	})
}
