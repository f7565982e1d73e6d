package socks5_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/socks5"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// roundTrip sends a line through 127.0.0.1:port and expects it back.
func roundTrip(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprint("127.0.0.1:", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "ping\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
}

// TestThroughUpstream: tcp in → nproxy socks5 out → microsocks (with and
// without a password) or danted → echo server, by name and by address.
func TestThroughUpstream(t *testing.T) {
	echo := nproxytest.EchoServer(t)
	for _, tc := range []struct {
		name, host, user, pass string
		peer                   func(t *testing.T) int
	}{
		{"microsocks", "127.0.0.1", "", "", func(t *testing.T) int { return microsocks(t, "", "") }},
		{"microsocks by name", "localhost", "", "", func(t *testing.T) int { return microsocks(t, "", "") }},
		{"microsocks with password", "127.0.0.1", "bob", "pw", func(t *testing.T) int { return microsocks(t, "bob", "pw") }},
		{"danted", "127.0.0.1", "", "", danted},
		{"danted by name", "localhost", "", "", danted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nproxytest.CaptureLog(t, 1)
			up := tc.peer(t)
			port := nproxytest.FreePort(t)
			nproxytest.Start(t, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port},
				&socks5.Out{Host: tc.host, Port: echo, ProxyHost: "127.0.0.1", ProxyPort: up, ProxyUser: tc.user, ProxyPass: tc.pass}))
			roundTrip(t, port)
		})
	}
}

// TestUpstreamRefuses: microsocks with a password, nproxy without or with a
// wrong one, and a destination nobody listens on: a log line naming the
// upstream and why, and the client is closed.
func TestUpstreamRefuses(t *testing.T) {
	echo := nproxytest.EchoServer(t)
	for _, tc := range []struct {
		name, pass string
		port       int
		log        string
	}{
		{"no password", "", echo, "no acceptable authentication method"},
		{"wrong password", "wrong", echo, "username/password refused"},
		{"closed destination", "pw", nproxytest.FreePort(t), "refused with reply code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 1)
			up := microsocks(t, "bob", "pw")
			port := nproxytest.FreePort(t)
			out := &socks5.Out{Host: "127.0.0.1", Port: tc.port, ProxyHost: "127.0.0.1", ProxyPort: up}
			if tc.pass != "" {
				out.ProxyUser, out.ProxyPass = "bob", tc.pass
			}
			nproxytest.Start(t, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
			c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatalf("read %d bytes, %v: want a closed connection", n, err)
			}
			logs.WaitFor(t, fmt.Sprintf("via 127.0.0.1 port %d", up), tc.log)
		})
	}
}

// TestChain: curl --socks5-hostname → nproxy socks5 in → nproxy socks5 out
// without host (the client's destination) → microsocks → web server.
func TestChain(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	web := httpServer(t)
	up := microsocks(t, "", "")
	port := nproxytest.FreePort(t)
	nproxytest.Start(t, 0, nproxy.New(&socks5.In{Host: "127.0.0.1", Port: port},
		&socks5.Out{ProxyHost: "127.0.0.1", ProxyPort: up}))
	out, err := curl(t, "--socks5-hostname", fmt.Sprint("127.0.0.1:", port), fmt.Sprintf("http://localhost:%d/", web))
	if err != nil || out != fmt.Sprintf("hello from localhost:%d", web) {
		t.Fatalf("curl: %v: %s", err, out)
	}
}
