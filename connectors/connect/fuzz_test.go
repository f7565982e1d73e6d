package connect

import (
	"bytes"
	"testing"
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
