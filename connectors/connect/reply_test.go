package connect

import (
	"strings"
	"testing"
)

const okReply = "HTTP/1.1 200 Connection established\r\nProxy-Agent: tinyproxy/1.11.1\r\n\r\n"

func TestReplyVerdicts(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	for _, tc := range []struct {
		name, in string
		want     Verdict
		code     int
		errHas   string
	}{
		{"tinyproxy", okReply, Open, 200, ""},
		{"http10", "HTTP/1.0 200 OK\r\n\r\n", Open, 200, ""},
		{"any 2xx", "HTTP/1.1 204 Whatever\r\n\r\n", Open, 204, ""},
		{"odd reason", "HTTP/1.1 299 \xe9tabli \t!\r\n\r\n", Open, 299, ""},
		{"no reason", "HTTP/1.1 200\r\n\r\n", Open, 200, ""},
		{"empty reason", "HTTP/1.1 200 \r\n\r\n", Open, 200, ""},
		{"content-length ignored", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Open, 200, ""},
		{"chunked ignored", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Open, 200, ""},
		{"empty value", "HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n", Open, 200, ""},
		{"403", "HTTP/1.1 403 Access violation\r\n", Refused, 403, ""},
		{"407", "HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n", Refused, 407, ""},
		{"502", "HTTP/1.1 502 Bad Gateway\r\n", Refused, 502, ""},
		{"100", "HTTP/1.1 100 Continue\r\n", Refused, 100, ""},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", Malformed, 0, "not HTTP/1.x"},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", Malformed, 0, "unsupported HTTP version"},
		{"HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n", Malformed, 0, "3-digit"},
		{"lower case", "http/1.1 200 OK\r\n\r\n", Malformed, 0, "not HTTP/1.x"},
		{"20", "HTTP/1.1 20 OK\r\n\r\n", Malformed, 0, "3-digit"},
		{"20 eol", "HTTP/1.1 20\r\n\r\n", Malformed, 0, "3-digit"},
		{"2000", "HTTP/1.1 2000 OK\r\n\r\n", Malformed, 0, "3-digit"},
		{"+200", "HTTP/1.1 +200 OK\r\n\r\n", Malformed, 0, "3-digit"},
		{"two spaces", "HTTP/1.1  200 OK\r\n\r\n", Malformed, 0, "3-digit"},
		{"000", "HTTP/1.1 000 OK\r\n\r\n", Malformed, 0, "out of range"},
		{"600", "HTTP/1.1 600 OK\r\n\r\n", Malformed, 0, "out of range"},
		{"empty status", "\r\n", Malformed, 0, "not HTTP/1.x"},
		{"bare LF status", "HTTP/1.1 200 OK\n\n", Malformed, 0, "bare LF"},
		{"bare LF header", "HTTP/1.1 200 OK\r\nA: b\n\r\n", Malformed, 200, "bare LF"},
		{"bare LF end", "HTTP/1.1 200 OK\r\n\n", Malformed, 200, "bare LF"},
		{"bare CR", "HTTP/1.1 200 OK\rX", Malformed, 0, "CR not followed"},
		{"no colon", "HTTP/1.1 200 OK\r\nJunk\r\n\r\n", Malformed, 200, "without a colon"},
		{"no colon, spaces", "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", Malformed, 200, "without a colon"},
		{"space before colon", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", Malformed, 200, "header name"},
		{"empty name", "HTTP/1.1 200 OK\r\n: b\r\n\r\n", Malformed, 200, "empty header name"},
		{"folding", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", Malformed, 200, "folding"},
		{"NUL status", "HTTP/1.1 200 O\x00K\r\n\r\n", Malformed, 0, "NUL"},
		{"NUL header", "HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n", Malformed, 200, "NUL"},
		{"control in value", "HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n", Malformed, 200, "control byte"},
		{"control in status", "HTTP/1.1 200 O\x1bK\r\n\r\n", Malformed, 0, "control byte"},
		{"16 KiB header", big, Malformed, 200, "exceed 8192"},
		{"16 KiB status", "HTTP/1.1 200 " + strings.Repeat("x", 16<<10), Malformed, 0, "exceed 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReplyParser(0).Feed([]byte(tc.in))
			if r.Verdict != tc.want || r.Code != tc.code {
				t.Fatalf("Feed(%.60q) = %v code %d (%v), want %v code %d", tc.in, r.Verdict, r.Code, r.Err, tc.want, tc.code)
			}
			if tc.want == Malformed && !strings.Contains(r.Err.Error(), tc.errHas) {
				t.Fatalf("error %q does not mention %q", r.Err, tc.errHas)
			}
			if tc.want != Malformed && r.Err != nil {
				t.Fatalf("unexpected error %v", r.Err)
			}
		})
	}
}

// TestReplySplitEverywhere feeds a reply followed by tunnel bytes in two
// pieces cut at every position, and checks the tunnel bytes come out whole.
func TestReplySplitEverywhere(t *testing.T) {
	const banner = "SSH-2.0-OpenSSH_9.2\r\n"
	in := okReply + banner
	for cut := 0; cut <= len(in); cut++ {
		p := NewReplyParser(0)
		var got []byte
		opened := false
		for _, piece := range []string{in[:cut], in[cut:]} {
			r := p.Feed([]byte(piece))
			if r.Verdict == Open {
				opened = true
				got = append(got, piece[r.Offset:]...)
			} else if r.Verdict != NeedMore {
				t.Fatalf("cut %d: %v %v", cut, r.Verdict, r.Err)
			}
		}
		if !opened || string(got) != banner {
			t.Fatalf("cut %d: opened %v, tunnel bytes %q", cut, opened, got)
		}
	}
}

func TestReplyByteByByte(t *testing.T) {
	p := NewReplyParser(0)
	for i := 0; i < len(okReply); i++ {
		r := p.Feed([]byte{okReply[i]})
		want := NeedMore
		if i == len(okReply)-1 {
			want = Open
		}
		if r.Verdict != want {
			t.Fatalf("byte %d: %v, want %v", i, r.Verdict, want)
		}
		if want == Open && (r.Offset != 1 || r.Status != "HTTP/1.1 200 Connection established") {
			t.Fatalf("open with offset %d status %q", r.Offset, r.Status)
		}
	}
	if r := p.Feed([]byte("more")); r.Verdict != Open || r.Offset != 0 {
		t.Fatalf("after open: %v offset %d", r.Verdict, r.Offset)
	}
}

func TestReplyLimit(t *testing.T) {
	exact := "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n"
	if r := NewReplyParser(len(exact)).Feed([]byte(exact)); r.Verdict != Open {
		t.Fatalf("block of exactly the limit: %v %v", r.Verdict, r.Err)
	}
	if r := NewReplyParser(len(exact) - 1).Feed([]byte(exact)); r.Verdict != Malformed {
		t.Fatalf("block one byte over the limit: %v", r.Verdict)
	}
	p := NewReplyParser(0)
	r := p.Feed([]byte("HTTP/1.1 2000\r\n"))
	if again := p.Feed([]byte("\r\n")); again.Verdict != Malformed || again.Err != r.Err {
		t.Fatalf("verdict not sticky: %v then %v", r, again)
	}
}

func BenchmarkReply(b *testing.B) {
	reply := []byte(okReply)
	b.ReportAllocs()
	for b.Loop() {
		if r := NewReplyParser(0).Feed(reply); r.Verdict != Open {
			b.Fatal(r.Verdict)
		}
	}
}
