package ssl

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
)

// clientHello returns the first flight of a client engine.
func clientHello(t testing.TB, certs *ssltest.Certs, version uint16) []byte {
	cfg, err := Params{CAFile: certs.CA, Hostname: "localhost", VerifyMode: 1}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxVersion = version
	e := tlsengine.NewClient(cfg, tlsengine.Options{}, func() {})
	defer e.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.Cipher()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return append([]byte(nil), e.Cipher()...)
}

// Whatever a client sends and then closes, the server side fails promptly
// with an error (a handshake cannot complete on one flight), and Close
// leaves nothing running.
func FuzzServerFeed(f *testing.F) {
	certs := ssltest.New(f)
	hello := clientHello(f, certs, tls.VersionTLS13)
	f.Add(hello)
	f.Add(clientHello(f, certs, tls.VersionTLS12))
	f.Add(hello[:len(hello)/2])
	f.Add(append(append([]byte(nil), hello...), 0x17, 0x03, 0x03, 0x00, 0x10))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add([]byte{0x80, 0x2e, 0x01, 0x00, 0x02})
	f.Add([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28})
	f.Add([]byte{})
	cfg, err := Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.ServerConfig()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wake := make(chan struct{}, 1)
		e := tlsengine.NewServer(cfg, tlsengine.Options{HandshakeTimeout: 30 * time.Second, QueueSize: 512}, func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		defer e.Close()
		for len(data) > 0 {
			n := e.Feed(data)
			data = data[n:]
			if n == 0 {
				e.Events()
				select {
				case <-wake:
				case <-time.After(10 * time.Millisecond):
				}
			}
			e.Sent(len(e.Cipher())) // the socket takes every reply
		}
		e.FeedEOF()
		// Events re-arms notify and tells what is due now: ciphertext the
		// handshake queued before it is drained is not announced again, and
		// a handshake waiting for room in a full queue fails only once the
		// socket took it.
		for ev := e.Events(); ev&tlsengine.Failed == 0; ev = e.Events() {
			if ev&tlsengine.CipherReady != 0 {
				e.Sent(len(e.Cipher()))
				continue
			}
			select {
			case <-wake:
			case <-time.After(10 * time.Second): // a deadline for a loaded machine, not a speed
				t.Fatalf("no failure 10 s after EOF; events %b", e.Events())
			}
		}
		if errors.Is(e.Err(), tlsengine.ErrHandshakeTimeout) || e.Events()&tlsengine.Handshaken != 0 {
			t.Fatalf("err %v, events %b", e.Err(), e.Events())
		}
	})
}

// Whatever SSL_version, SSL_verify_mode and SSL_alpn say, the client
// configuration is refused with a message naming the key, or usable.
func FuzzParams(f *testing.F) {
	f.Add("TLSv1_2", 1, "h2")
	f.Add("tlsv1.3", 0, "http/1.1")
	f.Add("SSLv3", 2, "")
	f.Add("", -1, "x")
	f.Fuzz(func(t *testing.T, version string, mode int, alpn string) {
		cfg, err := Params{Version: version, VerifyMode: mode, ALPN: []string{alpn}}.ClientConfig()
		if err != nil {
			if !strings.Contains(err.Error(), "SSL_") {
				t.Fatalf("error %q names no key", err)
			}
			return
		}
		badMode := mode != -1 && mode != 0 && mode != 1 && mode != 3
		if badMode || cfg.MinVersion > tls.VersionTLS13 || len(alpn) == 0 || len(alpn) > 255 {
			t.Fatalf("accepted %q %d %q", version, mode, alpn)
		}
	})
}
