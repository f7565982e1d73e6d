package socks5_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// TestBadClients: each misbehaving client gets the protocol's reply where
// it has one, a log line, and a closed connection.
func TestBadClients(t *testing.T) {
	methods255 := append([]byte{5, 255}, bytes.Repeat([]byte{0x80}, 255)...)
	long := strings.Repeat("a", 255)
	for _, tc := range []struct {
		name  string
		users bool
		send  []byte
		want  []byte // everything the client receives before the close
		log   string
	}{
		{"bad version", false, []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, nil, "bad version byte"},
		{"255 methods, none acceptable", false, methods255, []byte{5, 0xff}, "no acceptable authentication method among 255"},
		{"no password offered", true, []byte{5, 1, 0}, []byte{5, 0xff}, "no acceptable authentication method"},
		{"wrong password", true, []byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 1, 'x'}, []byte{5, 2, 1, 1}, "wrong username or password"},
		{"bad auth version", true, []byte{5, 1, 2, 5, 0, 0}, []byte{5, 2}, "bad username/password version"},
		{"empty domain", false, []byte{5, 1, 0, 5, 1, 0, 3, 0, 0, 80}, []byte{5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0}, "empty domain name"},
		{"unresolvable 255-byte domain", false, append(append([]byte{5, 1, 0, 5, 1, 0, 3, 255}, long...), 0, 80),
			[]byte{5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0}, "can't resolve"},
		{"bind", false, []byte{5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 53}, []byte{5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0}, "command 2 not supported"},
		{"bad address type", false, []byte{5, 1, 0, 5, 1, 0, 9, 1}, []byte{5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0}, "address type 9 not supported"},
		{"truncated", false, []byte{5, 1, 0, 5, 1, 0, 1, 127}, []byte{5, 0}, "closed during the exchange"},
		{"silence", false, nil, nil, "exchange not over within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 1)
			params := map[string]any{"timeout": "0.3"}
			if tc.users {
				params["users"] = map[string]any{"alice": "s3cret"}
			}
			port := socksIn(t, params)
			c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(tc.send)
			if tc.name == "truncated" {
				c.(*net.TCPConn).CloseWrite()
			}
			got := nproxytest.ExpectClosed(t, c, 10*time.Second)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("client got % x, want % x", got, tc.want)
			}
			logs.WaitFor(t, tc.log)
		})
	}
}
