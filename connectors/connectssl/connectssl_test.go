package connectssl

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/connect"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// run serves a tcp in on a free port to out in Mainloop(0) until the test
// ends; it returns the port and the log.
func run(t *testing.T, out *Out) (int, *nproxytest.LogBuffer) {
	t.Helper()
	logs := nproxytest.CaptureLog(t, 0)
	port := nproxytest.FreePort(t)
	nproxytest.Start(t, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	return port, logs
}

// tlsServer accepts TLS connections with the test server certificate on a
// fresh port and hands each to serve.
func tlsServer(t *testing.T, certs *ssltest.Certs, serve func(c *tls.Conn)) int {
	cfg, err := ssl.Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyMode: -1}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return ct.Serve(t, func(c net.Conn) { serve(tls.Server(c, cfg)) })
}

var lines = []string{
	"pete_peters sophie les mr_dork vijay\n",
	"d_fence abacus_remote ups_onlinet d2k_datamover2 ssslog_mgr\n",
	"Scooby_Doo Velma Freddy Daphne Shaggy\n",
	"Brian Florence Dougal Ermintrude Zebedee\n",
	"ale sherry cider wine whiskey\n",
}

// connectssl_tcp: CONNECT, 200, a TLS handshake in the tunnel, five lines
// in random directions; then a 403 closes the next client.
func TestScenarioConnectSSLTCP(t *testing.T) {
	certs := ssltest.New(t)
	servers := make(chan *tls.Conn, 1)
	backend := tlsServer(t, certs, func(c *tls.Conn) {
		servers <- c
		<-t.Context().Done()
	})
	var calls atomic.Int32
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		if calls.Add(1) == 1 {
			ct.TunnelTo(c, "HTTP/1.0 200 Connection established\r\n\r\n", backend)
			return
		}
		io.WriteString(c, "HTTP/1.0 403 Forbidden\r\n\r\n")
	})
	port, _ := run(t, &Out{Out: connect.Out{Host: "localhost", Port: 443, ProxyHost: sp.Host, ProxyPort: sp.Port}, Params: ssl.Params{CAFile: certs.CA, VerifyMode: -1}})

	client := nproxytest.Dial(t, port)
	if req := <-sp.Requests; req.Line != "CONNECT localhost:443 HTTP/1.1" {
		t.Errorf("request line %q", req.Line)
	}
	server := <-servers
	server.SetDeadline(time.Now().Add(10 * time.Second))
	cr, sr := bufio.NewReader(client), bufio.NewReader(server)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	for _, line := range lines {
		w, r := io.Writer(client), sr
		if rng.Intn(2) == 0 {
			w, r = server, cr
		}
		io.WriteString(w, line)
		if got, err := r.ReadString('\n'); got != line {
			t.Fatalf("read %q (%v), want %q", got, err, line)
		}
	}
	client.Close()
	if rest, err := io.ReadAll(sr); err != nil || len(rest) > 0 {
		t.Fatalf("server: want EOF, got %q, %v", rest, err)
	}

	refused := nproxytest.Dial(t, port)
	<-sp.Requests
	nproxytest.ExpectEOF(t, refused, 5*time.Second)
}

// connect_ssl through a real tinyproxy to openssl s_server, which the
// connector verifies.
func TestThroughTinyproxyToOpenSSL(t *testing.T) {
	openssl := nproxytest.Command(t, "openssl")
	certs := ssltest.New(t)
	sport := nproxytest.FreePort(t)
	cmd := exec.Command(openssl, "s_server", "-accept", fmt.Sprint("127.0.0.1:", sport), "-rev", "-naccept", "1",
		"-cert", certs.ServerCert, "-key", certs.ServerKey)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sr := bufio.NewReader(stdout)
	for line := ""; !strings.HasPrefix(line, "ACCEPT"); {
		var err error
		if line, err = sr.ReadString('\n'); err != nil {
			t.Fatalf("s_server: %v", err)
		}
	}
	go io.Copy(io.Discard, sr)
	tp := ct.StartTinyproxy(t, true, sport)
	port, _ := run(t, &Out{Out: connect.Out{Host: "127.0.0.1", Port: sport, ProxyHost: tp.Host, ProxyPort: tp.Port,
		ProxyUser: tp.User, ProxyPass: tp.Pass}, Params: ssl.Params{CAFile: certs.CA, VerifyMode: -1}})
	client := nproxytest.Dial(t, port)
	r := bufio.NewReader(client)
	for _, line := range lines {
		io.WriteString(client, line)
		got, err := r.ReadString('\n')
		want := []byte(strings.TrimSuffix(line, "\n"))
		for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
			want[i], want[j] = want[j], want[i]
		}
		if got != string(want)+"\n" {
			t.Fatalf("read %q (%v), want %q reversed", got, err, line)
		}
	}
}

// A server the connector cannot verify closes the client, with a log
// line naming the tunnel and the reason.
func TestVerifyFailureInTunnel(t *testing.T) {
	certs := ssltest.New(t)
	other := ssltest.New(t) // another CA: the server is unknown
	backend := tlsServer(t, other, func(c *tls.Conn) { c.Handshake() })
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\n\r\n", backend)
	})
	port, logs := run(t, &Out{Out: connect.Out{Host: "localhost", Port: 443, ProxyHost: sp.Host, ProxyPort: sp.Port}, Params: ssl.Params{CAFile: certs.CA, VerifyMode: -1}})
	nproxytest.ExpectEOF(t, nproxytest.Dial(t, port), 5*time.Second)
	logs.WaitFor(t, "connect_ssl to localhost port 443: TLS handshake: tls: failed to verify certificate")
}

func TestRegistry(t *testing.T) {
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("http_proxy", "")
	for _, bad := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"host": "h", "port": "443"}, "proxy_host parameter is required"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "SSL_verify_mode": "7"}, "SSL_verify_mode 7"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "SSL_hostnme": "x"}, "unknown parameter 'SSL_hostnme'"},
	} {
		bad.params["type"] = "connect_ssl"
		if _, err := connectors.BuildOut("out", bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.params, err, bad.want)
		}
	}
	out, err := connectors.BuildOut("out", map[string]any{"type": "connect_ssl", "host": "h", "port": "443", "proxy_host": "p", "proxy_port": "3128"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := out.(*Out).tls.Config()
	if err != nil || cfg.ServerName != "h" || cfg.InsecureSkipVerify {
		t.Errorf("%+v, %v", cfg, err)
	}
	if _, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "connect_ssl", "port": "1"}); err == nil {
		t.Error("connect_ssl accepted as an in connector")
	}
}
