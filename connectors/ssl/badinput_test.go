package ssl

import (
	"crypto/tls"
	"errors"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"github.com/nproxy/nproxy/nproxytest"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

// badPeer runs a server engine in the stand-in on one connection while peer
// plays the client over the other end; it returns how the stand-in ended
// and how long it took.
func badPeer(t *testing.T, certs *ssltest.Certs, opt tlsengine.Options, peer func(c net.Conn)) (result, time.Duration) {
	t.Helper()
	ssltest.CheckGoroutines(t)
	cfg := serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	l := nproxytest.Listener(t)
	client := dial(t, l.Addr().String())
	server := accept(t, l)
	peerDone := make(chan struct{})
	go func() {
		defer close(peerDone)
		defer client.Close()
		peer(client)
	}()
	start := time.Now()
	r := runStandIn(t, server, func(n func()) *tlsengine.Engine { return tlsengine.NewServer(cfg, opt, n) }, &app{echo: true}, 15*time.Second)
	took := time.Since(start)
	<-peerDone
	return r, took
}

// readToEOF reads until the server closes, for at most 5 s; it reports
// whether it saw the end.
func readToEOF(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

func TestPlainTextToServer(t *testing.T) {
	closed := false
	r, _ := badPeer(t, ssltest.New(t), tlsengine.Options{}, func(c net.Conn) {
		c.Write([]byte("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"))
		closed = readToEOF(c)
	})
	if r.err == nil || !strings.Contains(r.err.Error(), "does not look like a TLS handshake") {
		t.Fatalf("want a clear failure, got err=%v timeout=%v", r.err, r.timeout)
	}
	if !closed {
		t.Error("the client did not see the connection close")
	}
}

// A client that trickles a byte every 20 ms cannot extend the deadline.
func TestStalledHandshake(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r, took := badPeer(t, ssltest.New(t), tlsengine.Options{HandshakeTimeout: timeout}, func(c net.Conn) {
		c.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00}) // a handshake record of 256 bytes
		for range 100 {
			time.Sleep(20 * time.Millisecond)
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
		}
	})
	if !errors.Is(r.err, tlsengine.ErrHandshakeTimeout) {
		t.Fatalf("want the handshake timeout, got err=%v timeout=%v", r.err, r.timeout)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("failed after %v, deadline %v", took, timeout)
	}
}

// A client that goes away mid-handshake fails the handshake at once, not
// at its deadline.
func TestPeerVanishesMidHandshake(t *testing.T) {
	r, took := badPeer(t, ssltest.New(t), tlsengine.Options{}, func(c net.Conn) {
		c.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 1, 2, 3})
	})
	if r.err == nil || !strings.Contains(r.err.Error(), "EOF") {
		t.Fatalf("want an EOF failure, got err=%v timeout=%v", r.err, r.timeout)
	}
	if took > 2*time.Second {
		t.Errorf("took %v to notice", took)
	}
}

// tamperConn passes writes through until armed, then damages the next one.
type tamperConn struct {
	net.Conn
	armed  bool
	damage func(c net.Conn, p []byte)
}

func (c *tamperConn) Write(p []byte) (int, error) {
	if !c.armed {
		return c.Conn.Write(p)
	}
	c.damage(c.Conn, p)
	return len(p), nil
}

// tampering runs a Go TLS client that completes the handshake, exchanges
// one line, then sends one record damaged by damage.
func tampering(t *testing.T, damage func(c net.Conn, p []byte)) result {
	t.Helper()
	certs := ssltest.New(t)
	r, _ := badPeer(t, certs, tlsengine.Options{}, func(c net.Conn) {
		tc := &tamperConn{Conn: c, damage: damage}
		cli := tls.Client(tc, clientConfig(t, Params{CAFile: certs.CA, Hostname: "localhost", VerifyMode: 1}))
		cli.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := cli.Write([]byte("hello\n")); err != nil {
			t.Error(err)
			return
		}
		if _, err := io.ReadFull(cli, make([]byte, 6)); err != nil {
			t.Error(err)
			return
		}
		tc.armed = true
		cli.Write([]byte("this record is damaged\n"))
		readToEOF(c)
	})
	if got := string(r.app.got); !strings.HasPrefix(got, "hello\n") || strings.Contains(got, "damaged") {
		t.Errorf("plaintext %q", got)
	}
	return r
}

func TestTruncatedRecord(t *testing.T) {
	r := tampering(t, func(c net.Conn, p []byte) {
		c.Write(p[:len(p)/2])
		c.(*net.TCPConn).CloseWrite()
	})
	if r.err == nil || !strings.Contains(r.err.Error(), "unexpected EOF") {
		t.Fatalf("want an unexpected EOF, got err=%v eof=%v timeout=%v", r.err, r.app.gotEOF, r.timeout)
	}
}

func TestCorruptRecord(t *testing.T) {
	r := tampering(t, func(c net.Conn, p []byte) {
		q := append([]byte(nil), p...)
		q[len(q)-3] ^= 0x55
		c.Write(q)
	})
	if r.err == nil || !strings.Contains(r.err.Error(), "bad record MAC") {
		t.Fatalf("want bad record MAC, got err=%v timeout=%v", r.err, r.timeout)
	}
}

// A peer killed after the handshake ends the session promptly (an EOF at a
// record boundary reads as the end of the stream, as crypto/tls has it).
func TestPeerVanishesAfterHandshake(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	cfg := serverConfig(t, Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	l := nproxytest.Listener(t)
	cmd, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", l.Addr().String(), "-CAfile", certs.CA, "-quiet")
	c := accept(t, l)
	done := make(chan result, 1)
	go func() {
		done <- runStandIn(t, c, func(n func()) *tlsengine.Engine { return tlsengine.NewServer(cfg, tlsengine.Options{}, n) }, &app{echo: true}, 10*time.Second)
	}()
	stdin.Write([]byte("ping\n"))
	if line, _ := stdout.ReadString('\n'); line != "ping\n" {
		t.Fatalf("echo %q", line)
	}
	killed := time.Now()
	cmd.Process.Kill()
	r := <-done
	if r.timeout || time.Since(killed) > 2*time.Second {
		t.Fatalf("took %v to notice", time.Since(killed))
	}
	if r.err == nil && !r.app.gotEOF {
		t.Fatal("ended with neither EOF nor error")
	}
}
