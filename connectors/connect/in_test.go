package connect

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/access"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// connectIn runs a connect in (with users when given) allowing targetPort,
// in front of a tcp out without host, and returns its port and log.
func connectIn(t *testing.T, targetPort int, users map[string]any) (int, *nproxytest.LogBuffer) {
	t.Helper()
	logs := nproxytest.CaptureLog(t, 1)
	port := nproxytest.FreePort(t)
	in := &In{Host: "127.0.0.1", Port: port, Timeout: 500 * time.Millisecond, Control: access.Control{Users: users,
		Allow: []string{fmt.Sprintf("127.0.0.1:%d;localhost:%d", targetPort, targetPort)}}}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{}))
	return port, logs
}

// tlsTarget is a Go HTTPS server on 127.0.0.1; it returns its port.
func tlsTarget(t *testing.T) int {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello over TLS")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func curlX(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := nproxytest.Command(t, "curl")
	out, err := exec.Command(bin, append([]string{"-sS", "-k", "--max-time", "10"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestCurlConnect: curl -x through connect in to an HTTPS server, without
// and with credentials; and refusals curl reports with the status.
func TestCurlConnect(t *testing.T) {
	target := tlsTarget(t)
	url := fmt.Sprintf("https://localhost:%d/", target)
	t.Run("no auth", func(t *testing.T) {
		port, _ := connectIn(t, target, nil)
		if out, err := curlX(t, "-x", fmt.Sprint("http://127.0.0.1:", port), url); err != nil || out != "hello over TLS" {
			t.Fatalf("curl: %v: %s", err, out)
		}
	})
	t.Run("with credentials", func(t *testing.T) {
		port, _ := connectIn(t, target, map[string]any{"alice": "s3cret"})
		if out, err := curlX(t, "-x", fmt.Sprint("http://alice:s3cret@127.0.0.1:", port), url); err != nil || out != "hello over TLS" {
			t.Fatalf("curl: %v: %s", err, out)
		}
	})
	for _, tc := range []struct{ name, proxy, url, says, log string }{
		{"no credentials", "http://127.0.0.1:%d", url, "407", "missing or wrong credentials"},
		{"wrong password", "http://alice:nope@127.0.0.1:%d", url, "407", "missing or wrong credentials"},
		{"forbidden port", "http://alice:s3cret@127.0.0.1:%d", fmt.Sprintf("https://localhost:%d/", target+1), "403", "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, logs := connectIn(t, target, map[string]any{"alice": "s3cret"})
			out, err := curlX(t, "-x", fmt.Sprintf(tc.proxy, port), tc.url)
			if err == nil || !strings.Contains(out, tc.says) {
				t.Fatalf("curl: %v: %s (want %s)", err, out, tc.says)
			}
			logs.WaitFor(t, "connect in: client", tc.log)
		})
	}
}

// TestConnectInBad: scripted clients that misbehave get their status (if
// HTTP has one), a log line, and a closed connection.
func TestConnectInBad(t *testing.T) {
	for _, tc := range []struct{ name, send, status, log string }{
		{"GET", "GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", "method \"GET\" not allowed"},
		{"64 KiB request line", "CONNECT " + strings.Repeat("a", 64<<10) + ":443 HTTP/1.1\r\n\r\n", "HTTP/1.1 431", "too many bytes"},
		{"malformed target", "CONNECT nowhere HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request", "is not host:port"},
		{"malformed line", "CONNECT\r\n\r\n", "HTTP/1.1 400 Bad Request", "malformed request line"},
		{"silence", "CONNECT 127.0.0.1:443 HTTP/1.1\r\n", "", "exchange not over within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, logs := connectIn(t, 443, nil)
			c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(c, tc.send) // a 64 KiB line need not fit in the socket buffers
			got, _ := io.ReadAll(bufio.NewReader(c))
			if !strings.HasPrefix(string(got), tc.status) || tc.status == "" && len(got) > 0 {
				t.Fatalf("client got %q, want %q", got, tc.status)
			}
			logs.WaitFor(t, tc.log)
		})
	}
}

// TestConnectChain: a client → nproxy tcp in → nproxy connect out → nproxy
// connect in → tcp out → the HTTPS server: nproxy is its own CONNECT client.
func TestConnectChain(t *testing.T) {
	target := tlsTarget(t)
	nproxytest.CaptureLog(t, 1)
	front, proxyPort := nproxytest.FreePort(t), nproxytest.FreePort(t)
	in := &In{Host: "127.0.0.1", Port: proxyPort, Control: access.Control{Users: map[string]any{"alice": "s3cret"},
		Allow: []string{fmt.Sprint("127.0.0.1:", target)}}}
	out := &Out{Host: "127.0.0.1", Port: target, ProxyHost: "127.0.0.1", ProxyPort: proxyPort, ProxyUser: "alice", ProxyPass: "s3cret"}
	nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{}), nproxy.New(&tcp.In{Host: "127.0.0.1", Port: front}, out))
	// curl speaks TLS to "localhost" at the front port, which nproxy tunnels.
	got, err := curlX(t, "--connect-to", fmt.Sprintf("localhost:%d:127.0.0.1:%d", target, front), fmt.Sprintf("https://localhost:%d/", target))
	if err != nil || got != "hello over TLS" {
		t.Fatalf("curl: %v: %s", err, got)
	}
}
