package connect

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
)

// blockingHandshake is the simplest client of Request and ReplyParser: it
// checks both against real peers independently of the event loop.
func blockingHandshake(t *testing.T, w WebProxy, req Request) (net.Conn, Result, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", w.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	p := NewReplyParser(0)
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if r := p.Feed(buf[:n]); r.Verdict != NeedMore {
			return c, r, append([]byte(nil), buf[r.Offset:n]...)
		}
		if err != nil {
			t.Fatalf("reading reply: %v", err)
		}
	}
}

func TestHandshakeTinyproxy(t *testing.T) {
	up := ct.StartBannerServer(t)
	tp := ct.StartTinyproxy(t, true, up)
	ok := Request{Host: "127.0.0.1", Port: up, Agent: "nproxy-test", User: ct.User, Pass: ct.Pass}

	c, r, rest := blockingHandshake(t, WebProxy{Host: tp.Host, Port: tp.Port}, ok)
	if r.Verdict != Open || r.Status != "HTTP/1.0 200 Connection established" {
		t.Fatalf("with credentials: %v %q %v", r.Verdict, r.Status, r.Err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
	go c.Write(payload)
	want := append([]byte(ct.Banner), payload...)
	got := make([]byte, len(want))
	copy(got, rest)
	if _, err := io.ReadFull(c, got[len(rest):]); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("tunnel bytes differ (err %v)", err)
	}

	for _, tc := range []struct {
		name string
		req  Request
		want string
	}{
		{"no credentials", Request{Host: "127.0.0.1", Port: up}, "HTTP/1.0 407 "},
		{"wrong password", Request{Host: "127.0.0.1", Port: up, User: ct.User, Pass: "nope"}, "HTTP/1.0 401 "},
		{"forbidden port", Request{Host: "127.0.0.1", Port: up + 1, User: ct.User, Pass: ct.Pass}, "HTTP/1.1 403 "},
	} {
		if _, r, _ := blockingHandshake(t, WebProxy{Host: tp.Host, Port: tp.Port}, tc.req); r.Verdict != Refused || !strings.HasPrefix(r.Status, tc.want) {
			t.Errorf("%s: %v %q, want refused %q", tc.name, r.Verdict, r.Status, tc.want)
		}
	}
}

func TestHandshakeScripted(t *testing.T) {
	up := ct.StartBannerServer(t)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", up)
	})
	req := Request{Host: "::1", Port: up, Agent: "ua/1", User: "u", Pass: "p"}
	c, r, rest := blockingHandshake(t, WebProxy{Host: sp.Host, Port: sp.Port}, req)
	got := <-sp.Requests
	if got.Line != "CONNECT [::1]:"+strconv.Itoa(up)+" HTTP/1.1" || got.Headers["Host"] != "[::1]:"+strconv.Itoa(up) ||
		got.Headers["User-Agent"] != "ua/1" || got.Headers["Proxy-Authorization"] != "Basic dTpw" {
		t.Fatalf("proxy saw %+v", got)
	}
	if r.Verdict != Open {
		t.Fatalf("%v %v", r.Verdict, r.Err)
	}
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil || string(rest)+string(all) != ct.Banner {
		t.Fatalf("after half-close: %q %v", string(rest)+string(all), err)
	}
}
