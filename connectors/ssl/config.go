package ssl

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReloadInterval is how often, at most, certificate and key files are
// checked for a change on disk (during a handshake, so an idle listener
// checks nothing).
const ReloadInterval = 5 * time.Second

// Params are the TLS options of the ssl connectors, named as in
// IO::Socket::SSL, which Net::Proxy hands them to.
type Params struct {
	// CertFile and KeyFile (SSL_cert_file, SSL_key_file): PEM certificate
	// chain and key; required on the server side, a client certificate on
	// the client side.
	CertFile, KeyFile string
	// CAFile (SSL_ca_file): PEM roots that verify the peer; the system roots
	// when empty.
	CAFile string
	// VerifyMode (SSL_verify_mode): 0 verifies nothing, 1 verifies the peer's
	// certificate if it sends one (a server always does), 3 (1|2, fail if no
	// peer certificate) requires a client certificate. -1, the default, means
	// 1 on the client side and 0 on the server side.
	VerifyMode int
	// Hostname (SSL_hostname): the name sent by SNI and verified on the
	// client side.
	Hostname string
	// ALPN (SSL_alpn): protocols offered, in order of preference.
	ALPN []string
	// MinVersion (SSL_version): the oldest protocol version accepted; 0 for
	// crypto/tls's default (TLS 1.2).
	MinVersion uint16
}

// Names of the parameters ParseParams reads.
var ParamNames = []string{"SSL_cert_file", "SSL_key_file", "SSL_ca_file", "SSL_verify_mode", "SSL_hostname", "SSL_alpn", "SSL_version"}

// maxParamLen bounds every value: these are file names, host names and
// short lists, and a config file is untrusted input too.
const maxParamLen = 4096

// ParseParams reads the SSL_ keys of a connector's parameters (keys it does
// not know are left to the caller). SSL_alpn is a comma- or colon-separated
// list; SSL_version is a minimum such as TLSv1_2, TLSv1.3 or 1.2.
func ParseParams(kv map[string]string) (Params, error) {
	p := Params{VerifyMode: -1}
	for k, v := range kv {
		if !strings.HasPrefix(k, "SSL_") {
			continue
		}
		if len(v) > maxParamLen {
			return p, fmt.Errorf("%s: value longer than %d bytes", k, maxParamLen)
		}
		if err := p.set(k, v); err != nil {
			return p, fmt.Errorf("%s: %w", k, err)
		}
	}
	return p, nil
}

func (p *Params) set(k, v string) error {
	switch k {
	case "SSL_cert_file":
		p.CertFile = v
	case "SSL_key_file":
		p.KeyFile = v
	case "SSL_ca_file":
		p.CAFile = v
	case "SSL_hostname":
		p.Hostname = v
	case "SSL_verify_mode":
		m, err := strconv.Atoi(v)
		if err != nil || (m != 0 && m != 1 && m != 3) {
			return fmt.Errorf("%q is not 0 (none), 1 (peer) or 3 (peer, required)", v)
		}
		p.VerifyMode = m
	case "SSL_alpn":
		p.ALPN = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ':' })
		for _, proto := range p.ALPN {
			if len(proto) > 255 {
				return errors.New("an ALPN protocol name is longer than 255 bytes")
			}
		}
	case "SSL_version":
		ver, err := parseVersion(v)
		if err != nil {
			return err
		}
		p.MinVersion = ver
	default:
		return errors.New("unknown TLS parameter")
	}
	return nil
}

func parseVersion(v string) (uint16, error) {
	s := strings.NewReplacer("_", ".", "v", "").Replace(strings.ToLower(v))
	s = strings.TrimPrefix(s, "tls")
	switch s {
	case "1", "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not a TLS version (TLSv1, TLSv1_1, TLSv1_2, TLSv1_3)", v)
}

// ServerConfig builds the configuration of the server side. The certificate
// is re-read when its files change; connections keep the one they started with.
func (p Params) ServerConfig() (*tls.Config, error) {
	if p.CertFile == "" || p.KeyFile == "" {
		return nil, errors.New("SSL_cert_file and SSL_key_file are required")
	}
	kp, err := newKeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{GetCertificate: kp.getCertificate, NextProtos: p.ALPN, MinVersion: p.MinVersion}
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
	cfg := &tls.Config{ServerName: p.Hostname, NextProtos: p.ALPN, MinVersion: p.MinVersion}
	var err error
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
	checked  time.Time
	interval time.Duration
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("SSL_cert_file and SSL_key_file go together")
	}
	kp := &keyPair{certFile: certFile, keyFile: keyFile, interval: ReloadInterval}
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
		if stamp, err := kp.stat(); err == nil && stamp != kp.stamp {
			if err := kp.load(stamp); err != nil {
				slog.Error("keeping the previous certificate", "err", err)
			}
		}
	}
	return kp.cert
}

func (kp *keyPair) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return kp.current(), nil
}

func (kp *keyPair) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return kp.current(), nil
}
