package socks5_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/socks5"
	_ "github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// socksIn runs a socks5 in built from params (plus type, host and port) in
// front of a tcp out without host, and returns its port.
func socksIn(t *testing.T, params map[string]any) int {
	t.Helper()
	in := buildSocks(t, params)
	nproxytest.Start(t, 0, nproxy.New(in, tcpOut(t)))
	return in.Port
}

// buildSocks builds a socks5 in from params plus type, host (127.0.0.1) and
// a free port.
func buildSocks(t *testing.T, params map[string]any) *socks5.In {
	t.Helper()
	all := map[string]any{"type": "socks5", "host": "127.0.0.1", "port": nproxytest.FreePort(t)}
	for k, v := range params {
		all[k] = v
	}
	in, err := connectors.BuildIn("in", all)
	if err != nil {
		t.Fatal(err)
	}
	return in.(*socks5.In)
}

// tcpOut is a tcp out without host: it goes where the client asked.
func tcpOut(t *testing.T) connectors.Out {
	t.Helper()
	out, err := connectors.BuildOut("out", map[string]any{"type": "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCurl: curl --socks5-hostname (names resolved by nproxy) and --socks5
// (addresses resolved by curl), without and with username/password.
func TestCurl(t *testing.T) {
	web := httpServer(t)
	for _, tc := range []struct {
		name, flag, creds, host string
		users                   map[string]any
	}{
		{"hostname", "--socks5-hostname", "", "localhost", nil},
		{"address", "--socks5", "", "127.0.0.1", nil},
		{"hostname with password", "--socks5-hostname", "alice:s3cret@", "localhost", map[string]any{"alice": "s3cret"}},
		{"address with password", "--socks5", "alice:s3cret@", "127.0.0.1", map[string]any{"alice": "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 3)
			params := map[string]any{}
			if tc.users != nil {
				params["users"] = tc.users
			}
			port := socksIn(t, params)
			url := fmt.Sprintf("http://%s:%d/", tc.host, web)
			out, err := curl(t, tc.flag, fmt.Sprintf("%s127.0.0.1:%d", tc.creds, port), url)
			if err != nil || out != fmt.Sprintf("hello from %s:%d", tc.host, web) {
				t.Fatalf("curl: %v: %s", err, out)
			}
			logs.WaitFor(t, fmt.Sprintf("asks for %s port %d", tc.host, web))
		})
	}
}

// TestCurlIPv6: an IPv6 destination (ATYP 4) through socks5 in.
func TestCurlIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		nproxytest.Unavailable(t, "no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello over IPv6") }))
	logs := nproxytest.CaptureLog(t, 3)
	port := socksIn(t, nil)
	web := ln.Addr().(*net.TCPAddr).Port
	out, err := curl(t, "--socks5", fmt.Sprint("127.0.0.1:", port), fmt.Sprintf("http://[::1]:%d/", web))
	if err != nil || out != "hello over IPv6" {
		t.Fatalf("curl: %v: %s", err, out)
	}
	logs.WaitFor(t, fmt.Sprintf("asks for ::1 port %d", web))
}

// TestCurlRefused: a wrong password, a forbidden port and a closed port are
// each refused with the protocol's reply, which curl reports, and a log line.
func TestCurlRefused(t *testing.T) {
	web := httpServer(t)
	closed := nproxytest.FreePort(t)
	for _, tc := range []struct {
		name, creds string
		port        int
		curlSays    string
		log         string
	}{
		{"wrong password", "alice:wrong@", web, "User was rejected", "wrong username or password"},
		{"forbidden port", "alice:s3cret@", web + 1, "connection to 127.0.0.1. (2)", "not allowed"},
		{"closed port", "alice:s3cret@", closed, "connection to 127.0.0.1. (5)", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 1)
			port := socksIn(t, map[string]any{"users": map[string]any{"alice": "s3cret"},
				"allow": fmt.Sprintf("127.0.0.1:%d;127.0.0.1:%d", web, closed)})
			out, err := curl(t, "--socks5", fmt.Sprintf("%s127.0.0.1:%d", tc.creds, port), fmt.Sprintf("http://127.0.0.1:%d/", tc.port))
			if err == nil {
				t.Fatalf("curl succeeded: %s", out)
			}
			if !strings.Contains(out, tc.curlSays) {
				t.Errorf("curl says %q, want %q", out, tc.curlSays)
			}
			logs.WaitFor(t, tc.log)
		})
	}
}

// TestReplyBound: a successful reply's BND.ADDR and BND.PORT are the
// address nproxy's connection to the destination comes from, as the
// destination sees it, for an IPv4 and an IPv6 destination.
func TestReplyBound(t *testing.T) {
	port := socksIn(t, nil)
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			loopback := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
			ln, err := net.Listen(network, loopback)
			if err != nil {
				nproxytest.Unavailable(t, "no %s loopback: %v", network, err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			dst := ln.Addr().(*net.TCPAddr).AddrPort()
			req := append([]byte{5, 1, 0, 5, 1, 0}, atyp(dst)...)
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			reply := make([]byte, 2+3+len(atyp(dst)))
			if _, err := io.ReadFull(c, reply); err != nil {
				t.Fatalf("reply: %v", err)
			}
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			from := server.RemoteAddr().(*net.TCPAddr).AddrPort()
			if want := append([]byte{5, 0, 5, 0, 0}, atyp(from)...); !bytes.Equal(reply, want) {
				t.Errorf("reply % x, want % x (the connection came from %s)", reply, want, from)
			}
		})
	}
}

// atyp is ATYP ADDR PORT for ap.
func atyp(ap netip.AddrPort) []byte {
	b := []byte{1}
	if ap.Addr().Unmap().Is4() {
		a := ap.Addr().Unmap().As4()
		b = append(b, a[:]...)
	} else {
		a := ap.Addr().As16()
		b = append([]byte{4}, a[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// TestPipelined: a client that does not wait for answers sends, in one
// segment, its greeting, its request and its first bytes (after a PROXY
// header, for a socks5 in behind a proxy): nproxy answers both messages
// and the bytes reach the destination, in order, once.
func TestPipelined(t *testing.T) {
	echo := nproxytest.EchoServer(t)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(echo))
	for _, tc := range []struct {
		name   string
		params map[string]any
		header string
	}{
		{"greeting, request and data", nil, ""},
		{"PROXY header first", map[string]any{"proxy_protocol": "v1"}, "PROXY TCP4 192.0.2.1 127.0.0.1 4242 1080\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := nproxytest.Dial(t, socksIn(t, tc.params))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			data := []byte("first bytes, sent before any answer")
			msg := append(append(append([]byte(tc.header), 5, 1, 0, 5, 1, 0), atyp(dst)...), data...)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 2+3+len(atyp(dst))+len(data))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %q: %v", got, err)
			}
			if got[0] != 5 || got[1] != 0 || got[2] != 5 || got[3] != 0 {
				t.Fatalf("answers % x, want 05 00 (no auth) then 05 00 (succeeded)", got[:4])
			}
			if echoed := got[len(got)-len(data):]; !bytes.Equal(echoed, data) {
				t.Errorf("echoed %q, want %q", echoed, data)
			}
			c.CloseWrite()
			nproxytest.ExpectEOF(t, c, 5*time.Second)
		})
	}
}
