package connect

import (
	"strings"
	"testing"
)

func TestRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Host: "zlonk.crunch.com", Port: 443},
			"CONNECT zlonk.crunch.com:443 HTTP/1.1\r\nHost: zlonk.crunch.com:443\r\n\r\n"},
		{Request{Host: "::1", Port: 22, Agent: "connect-tunnel/0.1"},
			"CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\nUser-Agent: connect-tunnel/0.1\r\n\r\n"},
		{Request{Host: "[2001:db8::1]", Port: 443, User: "book", Pass: "s3kr3t:x"},
			"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n" +
				"Proxy-Authorization: Basic Ym9vazpzM2tyM3Q6eA==\r\n\r\n"},
		{Request{Host: "127.0.0.1", Port: 1, User: "u"},
			"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nProxy-Authorization: Basic dTo=\r\n\r\n"},
	} {
		if err := tc.req.Validate(); err != nil {
			t.Fatalf("%+v: %v", tc.req, err)
		}
		if got := string(tc.req.AppendTo(nil)); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.req, got, tc.want)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Port: 443}, "host parameter is required"},
		{Request{Host: "a", Port: 0}, "port 0 out of range"},
		{Request{Host: "a", Port: 65536}, "out of range"},
		{Request{Host: "a\r\nX: y", Port: 1}, "host contains a line break"},
		{Request{Host: "a b", Port: 1}, "not a host name"},
		{Request{Host: "a", Port: 1, Agent: "x\n"}, "proxy_agent contains"},
		{Request{Host: "a", Port: 1, User: "u\x00"}, "proxy_user contains"},
		{Request{Host: "a", Port: 1, User: "u", Pass: "p\r"}, "proxy_pass contains"},
		{Request{Host: "a", Port: 1, User: "u:v"}, "colon"},
	} {
		err := tc.req.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.want)
		}
	}
}
