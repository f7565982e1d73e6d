package ssl

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// The client half-closes (close_notify and FIN), the server answers after
// the end of the request, and the client reads the whole answer.
func TestHalfCloseThroughProxy(t *testing.T) {
	certs, be, port := setup(t)
	proxy(t, sslIn(certs, port), tcpOut(be.port))
	raw := dial(t, fmt.Sprint("127.0.0.1:", port))
	client := tls.Client(raw, tlsClientConfig(t, certs))
	client.SetDeadline(time.Now().Add(10 * time.Second))
	answer := bytes.Repeat([]byte("crunch_eth crraack "), 50000)
	served := make(chan error, 1)
	go func() {
		server := accept(t, be.l)
		defer server.Close()
		server.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := io.ReadAll(server)
		if err == nil && string(req) != "zlonk zok zapeth\n" {
			err = fmt.Errorf("request %q", req)
		}
		if err == nil {
			_, err = server.Write(answer)
		}
		served <- err
	}()
	io.WriteString(client, "zlonk zok zapeth\n")
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, answer) {
		t.Fatalf("answer: %d bytes of %d, %v", len(got), len(answer), err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// recorder keeps the last bytes read through it.
type recorder struct {
	net.Conn
	last []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.last = append(r.last, p[:n]...)
	if len(r.last) > 64 {
		r.last = r.last[len(r.last)-64:]
	}
	return n, err
}

// When the client leaves, the server gets close_notify before the FIN, not
// a bare truncation. TLS 1.2 is used because its alert records show their
// type on the wire.
func TestCloseNotifyOnClose(t *testing.T) {
	certs, be, port := setup(t)
	out := sslOut(certs, be.port)
	out.Hostname = "localhost"
	proxy(t, tcpIn(port), out)
	client := newEnd(dial(t, fmt.Sprint("127.0.0.1:", port)))
	rec := &recorder{Conn: accept(t, be.l)}
	cfg := tlsServerConfig(t, certs)
	cfg.MaxVersion = tls.VersionTLS12
	server := newEnd(tls.Server(rec, cfg))
	io.WriteString(client, "zowie\n")
	server.Expect(t, "zowie\n")
	io.WriteString(server, "zlonk\n")
	client.Expect(t, "zlonk\n")
	client.Close()
	server.expectEOF(t)
	// An encrypted alert: type 21, version 3.3, 26 bytes (AES-GCM) or so.
	if i := bytes.LastIndex(rec.last, []byte{21, 3, 3}); i < 0 || len(rec.last)-i > 64 {
		t.Fatalf("no alert record at the end: % x", rec.last)
	}
}

// The registry builds ssl connectors from Net::Proxy-style parameters and
// refuses bad ones with a message naming the key.
func TestRegistry(t *testing.T) {
	certs := ssltest.New(t)
	in, err := connectors.BuildIn("in", map[string]any{"type": "ssl", "port": "443", "start_cleartext": "1",
		"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey, "timeout": "2.5", "SSL_alpn": "h2 http/1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c := in.(*In); !c.StartCleartext || c.Timeout != 2500*time.Millisecond || c.VerifyMode != -1 || len(c.ALPN) != 2 {
		t.Errorf("in: %+v", c)
	}
	out, err := connectors.BuildOut("out", map[string]any{"type": "ssl", "host": "localhost", "port": "443", "SSL_verify_mode": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c := out.(*Out); c.VerifyMode != 0 || !c.cfg.InsecureSkipVerify {
		t.Errorf("out: %+v", c)
	}
	for _, bad := range []struct {
		side   connectors.Side
		params map[string]any
		want   string
	}{
		{connectors.SideIn, map[string]any{"port": "443"}, "SSL_cert_file and SSL_key_file are required"},
		{connectors.SideIn, map[string]any{"port": "443", "SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ClientKey}, "private key does not match"},
		{connectors.SideIn, map[string]any{"port": "443", "SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey, "SSL_hostname": "h"}, "SSL_hostname is for the client side"},
		{connectors.SideOut, map[string]any{"host": "h", "port": "1", "SSL_verify_mode": "2"}, "SSL_verify_mode 2"},
		{connectors.SideOut, map[string]any{"host": "h", "port": "1", "SSL_version": "SSLv2"}, "SSL_version"},
		{connectors.SideOut, map[string]any{"host": "h", "port": "1", "SSL_ca_file": "/nonexistent"}, "SSL_ca_file"},
		{connectors.SideOut, map[string]any{"host": "h", "port": "1", "SSL_cipher_list": "x"}, "unknown parameter 'SSL_cipher_list'"},
		{connectors.SideOut, map[string]any{"port": "1"}, "host parameter is required"},
	} {
		bad.params["type"] = "ssl"
		if _, err := connectors.Build(bad.side, string(bad.side), bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.params, err, bad.want)
		}
	}
}

// SSL_verify_mode 0 on the out side talks to a server it cannot verify, and
// says so once, at notice level, however many connections follow.
func TestOutInsecureNotice(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	cfg := serverConfig(t, Params{CertFile: certs.OtherCert, KeyFile: certs.OtherKey, VerifyMode: -1})
	port := nproxytest.FreePort(t)
	out := &Out{Host: "127.0.0.1", Port: echoBackend(t, cfg), Params: Params{VerifyMode: 0}}
	logs := proxy(t, tcpIn(port), out)
	for range 2 {
		client := newEnd(dial(t, fmt.Sprint("127.0.0.1:", port)))
		io.WriteString(client, "zowie\n")
		client.Expect(t, "zowie\n")
		client.Close()
	}
	if n := strings.Count(logs.String(), "SSL_verify_mode=0, the server's certificate is not verified"); n != 1 {
		t.Fatalf("%d notices:\n%s", n, logs.String())
	}
}
