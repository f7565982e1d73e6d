package proxyproto_test

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

func v2Header(length int, body []byte) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x00")
	binary.BigEndian.PutUint16(h[14:], uint16(length))
	return append(h, body...)
}

// TestBadHeaders: each bad header is a log line and a closed connection,
// and no server is reached.
func TestBadHeaders(t *testing.T) {
	addrs := []byte{127, 0, 0, 9, 127, 0, 0, 1, 0x30, 0x39, 0x00, 0x50}
	bogusTLV := append(append([]byte{}, addrs...), 0x02, 0x00, 0x09, 'x') // says 9 bytes, has 1
	for _, tc := range []struct {
		name, mode, from, send, log string
		eof                         bool // the client ends its side after sending
	}{
		{"truncated v1", "v1", "", "PROXY TCP4 1.2.3.4", "closed before a complete PROXY header", true},
		{"oversized v1", "v1", "", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", "PROXY header too long", false},
		{"garbage", "any", "", "GET / HTTP/1.0\r\n\r\n", "not a PROXY protocol header", false},
		{"v2 on a v1 port", "v1", "", string(v2Header(12, addrs)), "PROXY header of a version not accepted here", false},
		{"truncated v2", "v2", "", string(v2Header(12, addrs[:5])), "closed before a complete PROXY header", true},
		{"oversized v2", "v2", "", string(v2Header(60000, nil)), "PROXY header too long", false},
		{"bogus TLV length", "v2", "", string(v2Header(len(bogusTLV), bogusTLV)), "proxyproto:", false},
		{"bad v1 address", "v1", "", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "proxyproto:", false},
		{"not from an allowed address", "v1", "10.0.0.0/8", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "may not send a PROXY header", false},
		{"silence", "any", "", "", "no complete PROXY header within", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := nproxytest.CaptureLog(t, 1)
			be := nproxytest.Listener(t)
			reached := make(chan struct{}, 1)
			go func() {
				if c, err := be.Accept(); err == nil {
					reached <- struct{}{}
					c.Close()
				}
			}()
			port := nproxytest.FreePort(t)
			params := map[string]any{"type": "tcp", "host": "127.0.0.1", "port": port,
				"proxy_protocol": tc.mode, "proxy_protocol_timeout": "0.3"}
			if tc.from != "" {
				params["proxy_protocol_from"] = tc.from
			}
			in, err := connectors.BuildIn("in", params)
			if err != nil {
				t.Fatal(err)
			}
			nproxytest.Start(t, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: be.Addr().(*net.TCPAddr).Port}))
			c := dialFrom(t, "127.0.0.1", port)
			c.Write([]byte(tc.send))
			if tc.eof {
				c.CloseWrite()
			}
			nproxytest.ExpectEnd(t, c, 3*time.Second)
			logs.WaitFor(t, tc.log)
			select {
			case <-reached:
				t.Fatal("the server was reached")
			default:
			}
		})
	}
}

// TestSilentClientDeferred: a listener that expects a header hands a client
// to nproxy only once it has sent something (TCP_DEFER_ACCEPT), so that the
// header is read at accept; a client that stays silent is handed over after
// the kernel's wait (about a second) and then refused at the deadline. With
// a deadline of 0.2 s, the silent client is still connected 0.8 s after
// its connect (a busy machine makes that later, never sooner), then closed
// with the deadline's log line.
func TestSilentClientDeferred(t *testing.T) {
	logs := nproxytest.CaptureLog(t, 1)
	be := nproxytest.Listener(t)
	port := nproxytest.FreePort(t)
	nproxytest.Start(t, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port,
		Accept: proxyproto.Accept{ProxyProtocol: "v1", ProxyProtocolTimeout: 200 * time.Millisecond}},
		&tcp.Out{Host: "127.0.0.1", Port: be.Addr().(*net.TCPAddr).Port}))
	c := dialFrom(t, "127.0.0.1", port)
	c.SetReadDeadline(time.Now().Add(800 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !nproxytest.IsTimeout(err) {
		t.Fatalf("a silent client was ended before the kernel handed it over: read %d, %v", n, err)
	}
	nproxytest.ExpectEnd(t, c, 5*time.Second)
	logs.WaitFor(t, "no complete PROXY header within 200ms")
}
