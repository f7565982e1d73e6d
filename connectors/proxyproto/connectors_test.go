package proxyproto_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/dual"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	_ "github.com/nproxy/nproxy/connectors/starttls"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
	pp "github.com/pires/go-proxyproto"
)

// TestDualAfterHeader: the header and an SSH banner in one segment; dual's
// probes see the banner (nothing of it was taken with the header) and the
// backend hears of the header's client.
func TestDualAfterHeader(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	be := headerBackend(t)
	port := nproxytest.FreePort(t)
	ssh := &tcp.Out{Host: "127.0.0.1", Port: be, Send: proxyproto.Send{SendProxy: "v1"}}
	in := &dual.In{Host: "127.0.0.1", Port: port, Timeout: 5 * time.Second,
		ServerFirst: &tcp.Out{Host: "127.0.0.1", Port: 1}, ClientFirst: &tcp.Out{Host: "127.0.0.1", Port: 1},
		Routes: []dual.Route{{Probe: dual.SSH{}, Out: ssh}},
		Accept: proxyproto.Accept{ProxyProtocol: "any"}}
	nproxytest.Start(t, 0, nproxy.New(in, dummy.Connector{}))
	c := dialFrom(t, "127.0.0.1", port)
	c.Write([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 4242 22\r\nSSH-2.0-test\r\n"))
	wantLines(t, bufio.NewReader(c), "PROXY TCP4 192.0.2.1 198.51.100.2 4242 22", "SSH-2.0-test")
}

// TestTCPAfterHeaderInOneSegment: a header and the client's first bytes in
// one segment through a tcp relay, which reads them with the header and
// stashes them: the backend gets the header's client, then those bytes,
// then the rest, in order.
func TestTCPAfterHeaderInOneSegment(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	be := headerBackend(t)
	port := nproxytest.FreePort(t)
	in := &tcp.In{Host: "127.0.0.1", Port: port, Accept: proxyproto.Accept{ProxyProtocol: "v1"}}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: be, Send: proxyproto.Send{SendProxy: "v1"}}))
	c := dialFrom(t, "127.0.0.1", port)
	c.Write([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 4242 80\r\nfirst\r\n"))
	r := bufio.NewReader(c)
	wantLines(t, r, "PROXY TCP4 192.0.2.1 198.51.100.2 4242 80", "first")
	c.Write([]byte("second\r\n"))
	wantLines(t, r, "second")
}

// TestStarttlsAfterHeader: starttls greets a client once its header is
// read, and its log lines name the header's client.
func TestStarttlsAfterHeader(t *testing.T) {
	logs := nproxytest.CaptureLog(t, 2)
	certs := ssltest.New(t)
	port := nproxytest.FreePort(t)
	in, err := connectors.BuildIn("in", map[string]any{"type": "starttls", "host": "127.0.0.1", "port": port, "protocol": "smtp",
		"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey, "proxy_protocol": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: 1}))
	c := dialFrom(t, "127.0.0.1", port)
	c.Write([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 4242 25\r\n"))
	r := bufio.NewReader(c)
	if got := readLine(t, r); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting %q", got)
	}
	c.Write([]byte("QUIT\r\n"))
	logs.WaitFor(t, "client 192.0.2.1:4242 quit before STARTTLS")
}

// TestSendV2TLVs: a TLS client asking for a name → nproxy ssl in →
// send_proxy v2 → a backend that parses the header: the client's address,
// the SSL TLV and the authority (SNI) TLV are there.
func TestSendV2TLVs(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	certs := ssltest.New(t)
	got := make(chan *pp.Header, 1)
	ln := nproxytest.Listener(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h, _ := pp.Read(bufio.NewReader(c))
		got <- h
	}()
	port := nproxytest.FreePort(t)
	in, err := connectors.BuildIn("in", map[string]any{"type": "ssl", "host": "127.0.0.1", "port": port,
		"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Send: proxyproto.Send{SendProxy: "v2"}}))
	raw := dialFrom(t, "127.0.0.7", port)
	c := tls.Client(raw, &tls.Config{ServerName: "www.example.test", InsecureSkipVerify: true})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	var h *pp.Header
	select {
	case h = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no header")
	}
	if h == nil || h.SourceAddr.String() != raw.LocalAddr().String() {
		t.Fatalf("header %+v, client %s", h, raw.LocalAddr())
	}
	tlvs, _ := h.TLVs()
	var kinds []string
	for _, tlv := range tlvs {
		kinds = append(kinds, fmt.Sprintf("%#x=%q", byte(tlv.Type), tlv.Value))
	}
	all := strings.Join(kinds, " ")
	if !strings.Contains(all, `0x2="www.example.test"`) || !strings.Contains(all, "0x20=") || !strings.Contains(all, "TLS 1.3") {
		t.Fatalf("TLVs: %s", all)
	}
}
