package proxyproto_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	_ "github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// TestFromHaproxy: a client on 127.0.0.7 → haproxy send-proxy(-v2) →
// nproxy proxy_protocol → nproxy send_proxy v1 → a backend that writes the
// header it got back: it names the client, not haproxy, and nproxy's log
// does too.
func TestFromHaproxy(t *testing.T) {
	for _, tc := range []struct{ haproxy, mode string }{
		{"send-proxy", "v1"}, {"send-proxy-v2", "v2"}, {"send-proxy", "any"}, {"send-proxy-v2", "any"},
	} {
		t.Run(tc.haproxy+"/"+tc.mode, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 2)
			be := headerBackend(t)
			port, hport := nproxytest.FreePort(t), nproxytest.FreePort(t)
			p := nproxy.New(
				&tcp.In{Host: "127.0.0.1", Port: port, Accept: proxyproto.Accept{ProxyProtocol: tc.mode, ProxyProtocolFrom: []string{"127.0.0.1"}}},
				&tcp.Out{Host: "127.0.0.1", Port: be, Send: proxyproto.Send{SendProxy: "v1"}})
			nproxytest.Start(t, 0, p)
			haproxy(t, hport, fmt.Sprintf("listen l\n\tbind 127.0.0.1:%d\n\tserver s 127.0.0.1:%d %s\n", hport, port, tc.haproxy))
			c := dialFrom(t, "127.0.0.7", hport)
			c.Write([]byte("ping\n"))
			src := c.LocalAddr().String()
			r := bufio.NewReader(c)
			got := readLine(t, r)
			if got != fmt.Sprintf("PROXY TCP4 127.0.0.7 127.0.0.1 %d %d", c.LocalAddr().(*net.TCPAddr).Port, hport) {
				t.Fatalf("backend got %q; client is %s, haproxy listens on %d", got, src, hport)
			}
			if echo := readLine(t, r); echo != "ping" {
				t.Fatalf("echo %q", echo)
			}
			logs.WaitFor(t, "connection from "+src)
		})
	}
}

// TestToHaproxy: a client on 127.0.0.7 → nproxy send_proxy v1/v2 → haproxy
// accept-proxy, whose log names the client, not nproxy.
func TestToHaproxy(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			nproxytest.CaptureLog(t, 1)
			be := nproxytest.EchoServer(t)
			port, hport := nproxytest.FreePort(t), nproxytest.FreePort(t)
			hlog := haproxy(t, hport, fmt.Sprintf("frontend f\n\tbind 127.0.0.1:%d accept-proxy\n\tlog-format \"client=%%ci:%%cp\"\n\tdefault_backend b\n"+
				"backend b\n\tserver s 127.0.0.1:%d\n", hport, be))
			p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port},
				&tcp.Out{Host: "127.0.0.1", Port: hport, Send: proxyproto.Send{SendProxy: version}})
			nproxytest.Start(t, 0, p)
			c := dialFrom(t, "127.0.0.7", port)
			c.Write([]byte("ping\n"))
			if got := readLine(t, bufio.NewReader(c)); got != "ping" {
				t.Fatalf("echo %q", got)
			}
			c.Close() // haproxy logs a TCP session when it ends
			hlog.WaitFor(t, "client="+c.LocalAddr().String())
		})
	}
}

// TestHaproxyV2BeforeTLS: haproxy sends a v2 header, then its TLS
// ClientHello at once, to nproxy's ssl in: the header is read without
// taking a byte of TLS, and the client's address goes on downstream.
func TestHaproxyV2BeforeTLS(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	certs := ssltest.New(t)
	be := headerBackend(t)
	port, hport := nproxytest.FreePort(t), nproxytest.FreePort(t)
	in, err := connectors.BuildIn("in", map[string]any{"type": "ssl", "host": "127.0.0.1", "port": port,
		"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey, "proxy_protocol": "v2"})
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: be, Send: proxyproto.Send{SendProxy: "v1"}}))
	haproxy(t, hport, fmt.Sprintf("listen l\n\tbind 127.0.0.1:%d\n\tserver s 127.0.0.1:%d ssl verify none send-proxy-v2\n", hport, port))
	c := dialFrom(t, "127.0.0.7", hport)
	c.Write([]byte("ping\n"))
	r := bufio.NewReader(c)
	want := fmt.Sprintf("PROXY TCP4 127.0.0.7 127.0.0.1 %d %d", c.LocalAddr().(*net.TCPAddr).Port, hport)
	if got := readLine(t, r); got != want {
		t.Fatalf("backend got %q, want %q", got, want)
	}
	if echo := readLine(t, r); echo != "ping" {
		t.Fatalf("echo %q", echo)
	}
}

// TestTrickledHeader: a header that comes in pieces (v1 cut in its middle,
// v2 cut inside its fixed part and inside its addresses) is put together.
func TestTrickledHeader(t *testing.T) {
	v2 := append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"), 192, 0, 2, 1, 198, 51, 100, 2, 0x10, 0x92, 0, 22)
	for name, pieces := range map[string][]string{
		"v1": {"PROXY TCP4 192.0.2.1 198.", "51.100.2 4242 22\r\nping\n"},
		"v2": {string(v2[:7]), string(v2[7:20]), string(v2[20:]) + "ping\n"},
	} {
		t.Run(name, func(t *testing.T) {
			nproxytest.CaptureLog(t, 1)
			be := headerBackend(t)
			port := nproxytest.FreePort(t)
			nproxytest.Start(t, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port, Accept: proxyproto.Accept{ProxyProtocol: "any"}},
				&tcp.Out{Host: "127.0.0.1", Port: be, Send: proxyproto.Send{SendProxy: "v1"}}))
			c := dialFrom(t, "127.0.0.1", port)
			for _, p := range pieces {
				c.Write([]byte(p))
				// A pause between pieces, so that nproxy reads each on its
				// own: nothing observable tells when it has read one.
				time.Sleep(20 * time.Millisecond)
			}
			r := bufio.NewReader(c)
			if got := readLine(t, r); got != "PROXY TCP4 192.0.2.1 198.51.100.2 4242 22" {
				t.Fatalf("backend got %q", got)
			}
			if got := readLine(t, r); got != "ping" {
				t.Fatalf("echo %q", got)
			}
		})
	}
}
