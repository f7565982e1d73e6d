package starttls

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// setup is a starttls in on 127.0.0.1 in front of a plain backend, run by
// Mainloop until the test ends.
type setup struct {
	addr  string
	base  int // the process's sockets once the proxy listens
	certs *ssltest.Certs
	// tlsConfig trusts the proxy's certificate.
	tlsConfig *tls.Config
	be        net.Listener
	logs      *nproxytest.LogBuffer
}

// start runs a proxy from a starttls in speaking protocol (with the given
// timeout, 0 for the default), built from parameters as the command does,
// to a tcp out towards a fresh backend. hooks, if any, is the in's hook.
func start(t *testing.T, protocol string, timeout time.Duration, hooks ...loop.Hook) *setup {
	t.Helper()
	certs := ssltest.New(t)
	be := nproxytest.Listener(t)
	port := nproxytest.FreePort(t)
	params := map[string]any{"type": "starttls", "host": "127.0.0.1",
		"port": fmt.Sprint(port), "protocol": protocol,
		"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey}
	if timeout > 0 {
		params["timeout"] = fmt.Sprint(timeout.Seconds())
	}
	in, err := connectors.BuildIn("in", params)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		in.(*In).Hook = h
	}
	out := &tcp.Out{Host: "127.0.0.1", Port: be.Addr().(*net.TCPAddr).Port}
	logs := nproxytest.CaptureLog(t, 2)
	nproxytest.Start(t, 0, nproxy.New(in, out))
	return &setup{addr: fmt.Sprint("127.0.0.1:", port), base: len(nproxytest.Sockets()), certs: certs,
		tlsConfig: certs.ClientConfig(t), be: be, logs: logs}
}

// noLeak checks, once the test closed its own ends, that the proxy holds
// no socket and no TLS engine goroutine beyond its listener.
func (s *setup) noLeak(t *testing.T, ends ...io.Closer) {
	t.Helper()
	for _, e := range ends {
		e.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for (len(nproxytest.Sockets()) > s.base || ssltest.EngineGoroutines() != "") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(nproxytest.Sockets()); n > s.base {
		t.Errorf("%d sockets left open, %d before", n, s.base)
	}
	if left := ssltest.EngineGoroutines(); left != "" {
		t.Errorf("TLS engine goroutines left:\n%s", left)
	}
}

// end is one end of a connection, read line by line.
type end struct{ *ssltest.Lines }

func newEnd(c net.Conn) *end { return &end{ssltest.NewLines(c)} }

func (s *setup) dial(t *testing.T) *end {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newEnd(c)
}

// backend waits at most 5 s for the proxy to connect to the backend.
func (s *setup) backend(t *testing.T) *end {
	t.Helper()
	s.be.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := s.be.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newEnd(c)
}

// noBackend checks that the proxy did not connect to the backend.
func (s *setup) noBackend(t *testing.T) {
	t.Helper()
	s.be.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := s.be.Accept(); err == nil {
		c.Close()
		t.Fatal("the proxy connected to the backend")
	}
}

// expectEOF checks that the other side closed, whatever it sent before.
func (e *end) expectEOF(t *testing.T) {
	t.Helper()
	rest, err := io.ReadAll(e.R)
	if err != nil && !nproxytest.IsReset(err) {
		t.Fatalf("no EOF: %v (read %q)", err, rest)
	}
}

func (e *end) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(e, s); err != nil {
		t.Fatal(err)
	}
}

// upgrade runs a TLS client over e, whose buffered bytes belong to TLS.
func (e *end) upgrade(t *testing.T, certs *ssltest.Certs) *end {
	t.Helper()
	c := tls.Client(ssltest.Buffered(e.Conn, e.R), certs.ClientConfig(t))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return &end{&ssltest.Lines{Conn: c, R: bufio.NewReader(c)}}
}
