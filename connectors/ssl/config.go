package ssl

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// ReloadInterval is how often, at most, certificate and key files are
// checked for a change on disk (during a handshake, so an idle listener
// checks nothing).
const ReloadInterval = 5 * time.Second

// Params are the TLS options of the ssl connectors, named as in
// IO::Socket::SSL, which Net::Proxy hands them to. ServerConfig and
// ClientConfig check them and say which key is wrong. The connectors that
// speak TLS embed Params, so that their configurations take these keys.
type Params struct {
	// CertFile and KeyFile (SSL_cert_file, SSL_key_file): PEM certificate
	// chain and key; required on the server side, a client certificate on
	// the client side.
	CertFile string `param:"SSL_cert_file"`
	KeyFile  string `param:"SSL_key_file"`
	// CAFile (SSL_ca_file): PEM roots that verify the peer; the system roots
	// when empty.
	CAFile string `param:"SSL_ca_file"`
	// VerifyMode (SSL_verify_mode): 0 verifies nothing, 1 verifies the peer's
	// certificate if it sends one (a server always does), 3 (1|2, fail if no
	// peer certificate) requires a client certificate. -1, the default, means
	// 1 on the client side and 0 on the server side.
	VerifyMode int `param:"SSL_verify_mode"`
	// Hostname (SSL_hostname): the name sent by SNI and verified on the
	// client side.
	Hostname string `param:"SSL_hostname"`
	// ALPN (SSL_alpn): protocols offered, in order of preference.
	ALPN []string `param:"SSL_alpn"`
	// Version (SSL_version): the oldest protocol version accepted, such as
	// TLSv1_2, TLSv1.3 or 1.2; crypto/tls's default (TLS 1.2) when empty.
	Version string `param:"SSL_version"`
}

// maxALPN is the longest protocol name TLS can carry.
const maxALPN = 255

// base checks what both sides share and returns its part of a configuration.
func (p Params) base() (*tls.Config, error) {
	if p.VerifyMode != -1 && p.VerifyMode != 0 && p.VerifyMode != 1 && p.VerifyMode != 3 {
		return nil, fmt.Errorf("SSL_verify_mode %d is not 0 (none), 1 (peer) or 3 (peer, required)", p.VerifyMode)
	}
	for _, proto := range p.ALPN {
		if proto == "" || len(proto) > maxALPN {
			return nil, fmt.Errorf("SSL_alpn: protocol names are 1 to %d bytes long", maxALPN)
		}
	}
	cfg := &tls.Config{NextProtos: p.ALPN}
	if p.Version != "" {
		v, err := parseVersion(p.Version)
		if err != nil {
			return nil, err
		}
		cfg.MinVersion = v
	}
	return cfg, nil
}

func parseVersion(v string) (uint16, error) {
	s := strings.NewReplacer("_", ".", "v", "").Replace(strings.ToLower(v))
	switch strings.TrimPrefix(s, "tls") {
	case "1", "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("SSL_version %q is not a TLS version (TLSv1, TLSv1_1, TLSv1_2, TLSv1_3)", v)
}

// ServerConfig builds the configuration of the server side. The certificate
// is re-read when its files change; connections keep the one they started with.
func (p Params) ServerConfig() (*tls.Config, error) {
	if p.CertFile == "" || p.KeyFile == "" {
		return nil, errors.New("SSL_cert_file and SSL_key_file are required")
	}
	if p.Hostname != "" {
		return nil, errors.New("SSL_hostname is for the client side (an out connector)")
	}
	cfg, err := p.base()
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg.GetCertificate = kp.getCertificate
	switch p.VerifyMode {
	case 1, 3:
		if cfg.ClientCAs, err = loadPool(p.CAFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if p.VerifyMode == 3 {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// ClientConfig builds the configuration of the client side. It verifies the
// server unless VerifyMode is 0; Insecure tells whether it does not, for the
// caller to log.
func (p Params) ClientConfig() (*tls.Config, error) {
	cfg, err := p.base()
	if err != nil {
		return nil, err
	}
	cfg.ServerName = p.Hostname
	if cfg.RootCAs, err = loadPool(p.CAFile); err != nil {
		return nil, err
	}
	cfg.InsecureSkipVerify = p.VerifyMode == 0
	if p.CertFile != "" || p.KeyFile != "" {
		kp, err := newKeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = kp.getClientCertificate
	}
	return cfg, nil
}

// Insecure tells whether the client side skips verifying the server.
func (p Params) Insecure() bool { return p.VerifyMode == 0 }

// loadPool returns the roots in file, or nil (the system roots) if no file.
func loadPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SSL_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("SSL_ca_file: no PEM certificate in %s", file)
	}
	return pool, nil
}

// keyPair is a certificate and key that follow their files on disk.
type keyPair struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	stamp    string // the files' sizes and modification times
	failed   string // the stamp of the files that last failed to load
	failures int    // failed reloads since the last good one
	warn     func(msg string, args ...any)
	checked  time.Time
	interval time.Duration
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("SSL_cert_file and SSL_key_file go together")
	}
	kp := &keyPair{certFile: certFile, keyFile: keyFile, interval: ReloadInterval, warn: slog.Warn}
	stamp, err := kp.stat()
	if err == nil {
		err = kp.load(stamp)
	}
	return kp, err
}

func (kp *keyPair) stat() (string, error) {
	var b strings.Builder
	for _, f := range []string{kp.certFile, kp.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (kp *keyPair) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("SSL_cert_file/SSL_key_file: %w", err)
	}
	kp.cert, kp.stamp = &cert, stamp
	return nil
}

// current returns the certificate, re-reading the files if they changed and
// ReloadInterval passed since the last look. A failed reload (say, the
// certificate written before its key) keeps the previous pair and is retried.
func (kp *keyPair) current() *tls.Certificate {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if now := time.Now(); now.Sub(kp.checked) >= kp.interval {
		kp.checked = now
		if stamp, err := kp.stat(); err == nil && stamp != kp.stamp && stamp != kp.failed {
			kp.reload(stamp)
		}
	}
	return kp.cert
}

// reload loads the files as they are at stamp. A failure is a warning
// once per version of the files, not once per ReloadInterval: files that
// stay broken are not re-read until they change again.
func (kp *keyPair) reload(stamp string) {
	if err := kp.load(stamp); err != nil {
		kp.failed = stamp
		kp.failures++
		kp.warn(fmt.Sprintf("certificate reload failed (%d times since the last good one), keeping the previous certificate: %v", kp.failures, err))
		return
	}
	if kp.failures > 0 {
		kp.warn(fmt.Sprintf("certificate reloaded after %d failed attempts", kp.failures))
		kp.failures = 0
	}
}

func (kp *keyPair) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return kp.current(), nil
}

func (kp *keyPair) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return kp.current(), nil
}
