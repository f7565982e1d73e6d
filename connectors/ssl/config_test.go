package ssl

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

func TestParamsChecks(t *testing.T) {
	cfg := clientConfig(t, Params{VerifyMode: 1, Hostname: "example.org", ALPN: []string{"h2", "http/1.1"}, Version: "TLSv1_3"})
	if cfg.ServerName != "example.org" || strings.Join(cfg.NextProtos, " ") != "h2 http/1.1" || cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("got %+v", cfg)
	}
	for _, v := range []string{"TLSv1_2", "tlsv1.2", "1.2", "TLSv1.2"} {
		if cfg := clientConfig(t, Params{Version: v, VerifyMode: -1}); cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("SSL_version %s: %x", v, cfg.MinVersion)
		}
	}
	for p, msg := range map[string]Params{
		"SSL_verify_mode": {VerifyMode: 2},
		"SSL_version":     {Version: "SSLv3", VerifyMode: -1},
		"SSL_alpn":        {ALPN: []string{strings.Repeat("a", 300)}, VerifyMode: -1},
	} {
		if _, err := msg.ClientConfig(); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%+v: error %v, want it to name %s", msg, err, p)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	certs := ssltest.New(t)
	if _, err := (Params{VerifyMode: -1}).ServerConfig(); err == nil {
		t.Error("a server without a certificate was accepted")
	}
	cli := clientConfig(t, Params{VerifyMode: -1, Hostname: "localhost"})
	if cli.InsecureSkipVerify || cli.RootCAs != nil {
		t.Error("the client side does not verify with the system roots by default")
	}
	if !(Params{VerifyMode: 0}).Insecure() || (Params{VerifyMode: -1}).Insecure() {
		t.Error("Insecure is wrong")
	}
	srv := serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyMode: -1})
	if srv.ClientAuth != tls.NoClientCert {
		t.Error("the server side asks for client certificates by default")
	}
	if _, err := (Params{CertFile: certs.ServerCert, KeyFile: certs.ClientKey}).ServerConfig(); err == nil {
		t.Error("a key that does not match the certificate was accepted")
	}
	if _, err := (Params{CAFile: certs.ServerKey}).ClientConfig(); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
}

// copyFile replaces dst with src's content and a later modification time.
func copyFile(t *testing.T, src, dst string, when time.Time) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(dst, when, when)
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

// A renewed certificate is picked up without a restart; a half-written
// renewal (new certificate, old key) keeps the previous pair until the key
// follows.
// reloadingPair is a keyPair on copies of the server certificate and key,
// written a minute ago, that looks at them on every use.
func reloadingPair(t *testing.T) (kp *keyPair, certs *ssltest.Certs, cert, key string) {
	certs = ssltest.New(t)
	dir := t.TempDir()
	cert, key = dir+"/cert.pem", dir+"/key.pem"
	past := time.Now().Add(-time.Minute)
	copyFile(t, certs.ServerCert, cert, past)
	copyFile(t, certs.ServerKey, key, past)
	kp, err := newKeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	kp.interval = 0
	return kp, certs, cert, key
}

func TestCertificateReload(t *testing.T) {
	kp, certs, cert, key := reloadingPair(t)
	if cn := commonName(t, kp.current()); cn != "server" {
		t.Fatalf("first certificate %q", cn)
	}
	copyFile(t, certs.OtherCert, cert, time.Now())
	if cn := commonName(t, kp.current()); cn != "server" {
		t.Fatalf("a certificate without its key replaced the pair: %q", cn)
	}
	copyFile(t, certs.OtherKey, key, time.Now())
	if cn := commonName(t, kp.current()); cn != "other" {
		t.Fatalf("the renewed certificate was not loaded: %q", cn)
	}
	kp.interval = time.Hour
	copyFile(t, certs.ServerCert, cert, time.Now().Add(time.Second))
	copyFile(t, certs.ServerKey, key, time.Now().Add(time.Second))
	if cn := commonName(t, kp.current()); cn != "other" {
		t.Fatalf("the files were looked at again before the interval: %q", cn)
	}
}

// A reload that fails warns once per version of the files, however often
// the certificate is asked for, and the recovery says how many failed.
func TestCertificateReloadFailureWarnsOnce(t *testing.T) {
	kp, certs, cert, key := reloadingPair(t)
	var warnings []string
	kp.warn = func(msg string, _ ...any) { warnings = append(warnings, msg) }
	copyFile(t, certs.OtherCert, cert, time.Now())
	for range 10 {
		kp.current()
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "certificate reload failed (1 times") {
		t.Fatalf("after 10 looks at a broken pair, warnings %q, want one", warnings)
	}
	copyFile(t, certs.OtherKey, key, time.Now())
	if cn := commonName(t, kp.current()); cn != "other" {
		t.Fatalf("the renewed certificate was not loaded: %q", cn)
	}
	if len(warnings) != 2 || warnings[1] != "certificate reloaded after 1 failed attempts" {
		t.Fatalf("warnings %q, want the recovery said", warnings)
	}
}
