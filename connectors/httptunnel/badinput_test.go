package httptunnel

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// A scripted client, for what a real htc never sends.

// scriptedServer starts nproxy as hts in front of an echo server, with a short
// timeout, and returns its port and log.
func scriptedServer(t *testing.T) (int, *nproxytest.LogBuffer) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), MaxTunnels: 2, Options: Options{Timeout: time.Second}}
	logs := start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}))
	return in.Port, logs
}

// send opens a connection to port and writes head and body.
func send(t *testing.T, port int, head string, body ...byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append([]byte(head), body...)); err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	postHead = "POST /index.html?crap=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
	getHead  = "GET /index.html?crap=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
)

// refused dials port, writes data, and expects the connection to be closed
// or reset, which may happen before the dial even returns.
func refused(t *testing.T, port int, data string) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		if !strings.Contains(err.Error(), "reset") {
			t.Fatal(err)
		}
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(data))
	expectClosed(t, c)
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("not closed: %v", err)
	}
	return string(b)
}

func TestBadInput(t *testing.T) {
	port, logs := scriptedServer(t)
	open := []byte{opOpen, 0, 1, 42}
	cases := []struct {
		name string
		run  func(t *testing.T)
		log  string
	}{
		{"unknown opcode", func(t *testing.T) {
			post := send(t, port, postHead, append(open, 0x99)...)
			expectClosed(t, post)
		}, "unknown opcode 0x99"},
		{"truncated frame", func(t *testing.T) {
			post := send(t, port, postHead, append(open, opData, 0, 10, 'x')...)
			post.(*net.TCPConn).CloseWrite()
			expectClosed(t, post)
		}, "body ended inside a frame"},
		{"Content-Length 2^63", func(t *testing.T) {
			c := send(t, port, strings.Replace(postHead, "1000", "9223372036854775808", 1), open...)
			expectClosed(t, c)
		}, "bad HTTP request"},
		{"Content-Length 2^63-1", func(t *testing.T) {
			c := send(t, port, strings.Replace(postHead, "1000", "9223372036854775807", 1), open...)
			expectClosed(t, c)
		}, "Content-Length 9223372036854775807 out of range"},
		{"no GET", func(t *testing.T) {
			post := send(t, port, postHead, open...)
			expectClosed(t, post)
		}, "no GET within 1s"},
		{"head too long", func(t *testing.T) {
			c := send(t, port, "GET /"+strings.Repeat("a", 9000))
			expectClosed(t, c)
		}, "HTTP head longer than 8 KiB"},
		{"head never ends", func(t *testing.T) {
			c := send(t, port, "GET / HTTP/1.1\r\n")
			expectClosed(t, c)
		}, "no complete HTTP head within 1s"},
		{"more body than announced", func(t *testing.T) {
			post := send(t, port, strings.Replace(postHead, "1000", "5", 1), append(open, opPad1, opPad1)...)
			expectClosed(t, post)
		}, "more body than its Content-Length"},
		{"error frame", func(t *testing.T) {
			post := send(t, port, postHead, append(open, opError, 0, 4, 'o', 'o', 'p', 's')...)
			expectClosed(t, post)
		}, "peer reported an error: oops"},
		{"too many tunnels", func(t *testing.T) {
			// Each names its tunnel, as nproxy's out does: GNU tunnels
			// from one address supersede each other.
			named := func(id string) string {
				return strings.Replace(postHead, "\r\n\r\n", "\r\n"+tunnelHeader+": "+id+"\r\n\r\n", 1)
			}
			send(t, port, named("a"), open...)
			send(t, port, named("b"), open...)
			expectClosed(t, send(t, port, named("c"), open...))
		}, "too many tunnels (2)"},
		{"tunnel id too long", func(t *testing.T) {
			long := strings.Replace(postHead, "\r\n\r\n", "\r\n"+tunnelHeader+": "+strings.Repeat("x", maxTunnelID+1)+"\r\n\r\n", 1)
			expectClosed(t, send(t, port, long, open...))
		}, tunnelHeader + " of 65 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t)
			logs.WaitFor(t, c.log)
		})
	}
}
