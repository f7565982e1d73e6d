package socks5

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzServerMessages: the server's parsers never panic, and never claim
// more bytes than they were given; a UDP header parsed is one that
// appendUDPHeader would write for its address, and its data is the rest.
func FuzzServerMessages(f *testing.F) {
	f.Add([]byte{5, 2, 0, 2})
	f.Add([]byte{1, 3, 'b', 'o', 'b', 2, 'p', 'w'})
	f.Add([]byte{5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80})
	f.Add([]byte{5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 0, 0, 1, 127, 0, 0, 1, 4, 56})
	f.Add([]byte{0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 'q'})
	f.Add([]byte{0, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7})
	f.Add([]byte{0, 0, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 53, 'x', 'y'})
	f.Add([]byte{0, 0, 0, 3, 0, 0, 53})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, n, _ := parseGreeting(data); n > len(data) {
			t.Fatal("greeting overruns")
		}
		if _, _, n, _ := parseAuth(data); n > len(data) {
			t.Fatal("auth overruns")
		}
		if _, n, _ := parseRequest(data); n > len(data) {
			t.Fatal("request overruns")
		}
		if _, n, _ := parseReply(data); n > len(data) {
			t.Fatal("reply overruns")
		}
		checkUDPHeader(t, data)
	})
}

func checkUDPHeader(t *testing.T, d []byte) {
	h, data, err := parseUDPHeader(d)
	if err != nil {
		return
	}
	if len(data) > len(d)-4 || !bytes.Equal(data, d[len(d)-len(data):]) {
		t.Fatalf("data % x is not the tail of % x", data, d)
	}
	if len(h.name) > maxName {
		t.Fatalf("name of %d bytes accepted", len(h.name))
	}
	if h.addr.IsValid() && d[3] == atypIPv4 {
		want := appendUDPHeader(nil, netip.AddrPortFrom(h.addr, h.port))
		copy(want, d[:2]) // RSV is not checked
		want[2] = h.frag
		if !bytes.Equal(want, d[:len(d)-len(data)]) {
			t.Fatalf("header % x parsed as %v port %d", d[:len(d)-len(data)], h.addr, h.port)
		}
	}
}
