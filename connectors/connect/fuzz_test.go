package connect

import (
	"bytes"
	"testing"

	"github.com/nproxy/nproxy/connectors/access"
)

// FuzzReply checks that any input, split anywhere, gets the same verdict
// and the same tunnel bytes as when fed whole, and that an open tunnel
// starts right after a CRLF CRLF within the limit.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		okReply + "SSH-2.0-x\r\n", "HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.1 407 Auth\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 +200 OK\r\n\r\n", "HTTP/1.1 200 OK\n\n",
		"HTTP/1.1 200 OK\r\nJunk\r\n\r\n", "HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n", "",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add([]byte(s), uint16(len(s)/2), uint16(64))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut, limit uint16) {
		whole := NewReplyParser(int(limit)).Feed(in)
		at := int(cut) % (len(in) + 1)
		p := NewReplyParser(int(limit))
		r := p.Feed(in[:at])
		var rest []byte
		if r.Verdict == NeedMore {
			r = p.Feed(in[at:])
			rest = in[at+r.Offset:]
		} else {
			rest = in[r.Offset:]
		}
		if r.Verdict != whole.Verdict || r.Status != whole.Status {
			t.Fatalf("split at %d: %v %q, whole: %v %q", at, r.Verdict, r.Status, whole.Verdict, whole.Status)
		}
		if whole.Verdict != Open {
			return
		}
		head, eff := in[:whole.Offset], int(limit)
		if eff == 0 {
			eff = DefaultHeaderLimit
		}
		if !bytes.Equal(rest, in[whole.Offset:]) || !bytes.HasSuffix(head, []byte("\r\n\r\n")) || len(head) > eff {
			t.Fatalf("open at %d: head %q", whole.Offset, head)
		}
		if whole.Code < 200 || whole.Code > 299 {
			t.Fatalf("open with code %d", whole.Code)
		}
	})
}

// FuzzConnectRequest: connect in's head framing and judgement never panic,
// and a destination it accepts is one the rules permit.
func FuzzConnectRequest(f *testing.F) {
	f.Add([]byte("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nProxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"))
	f.Add([]byte("CONNECT [::1]:443 HTTP/1.0\n\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	in := &In{Port: 1, Control: access.Control{Users: map[string]any{"alice": "s3cret"}}}
	if err := in.Validate(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data)
		if end < 0 {
			return
		}
		if end > len(data) {
			t.Fatalf("head of %d bytes in %d", end, len(data))
		}
		host, port, err := in.judge(data[:end])
		if err == nil && !in.Permit(host, port) {
			t.Fatalf("%s:%d accepted against the rules", host, port)
		}
	})
}
