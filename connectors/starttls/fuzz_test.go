package starttls

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// reads offers data in the pieces a socket might deliver, their sizes
// cycling through the bytes of split (1 to 256 bytes each); each says how
// much of its piece it took (the rest is offered again) and whether to go on.
func reads(data, split []byte, each func(p []byte) (int, bool)) {
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(split) > 0 {
			n = min(n, int(split[i%len(split)])+1)
		}
		took, goOn := each(data[:n])
		if !goOn {
			return
		}
		data = data[took:]
	}
}

// The command parser, as the session drives it, on any input in any
// pieces: lines stay under maxLine, every answer is whole lines ending in
// CR LF, and nothing after the line that asked for TLS is taken.
func FuzzCommands(f *testing.F) {
	for _, sc := range scripts {
		f.Add([]byte(sc.caps+sc.starttls+"\x16\x03\x01\x00\x05hello"), []byte{0})
		f.Add([]byte(sc.caps+"NOOP\r\n"+sc.quit), []byte{3, 200})
	}
	f.Add([]byte(strings.Repeat("a", 2*maxLine)+"\n"), []byte{255})
	f.Add([]byte("\r\n\n a b\r\nSTARTTLS x\r\n\x00 STARTTLS\r\nabc{5}\r\n"), []byte{1})
	f.Add([]byte("a\xffSTARTTLS\r\n.. STARTTLS\r\nstls\r\n"), []byte{7, 1})
	f.Fuzz(func(t *testing.T, data, split []byte) {
		for name, d := range dialects {
			var lb lineBuf
			taken := 0
			reads(data, split, func(p []byte) (int, bool) {
				p = p[:min(len(p), lb.room())]
				k := lineEnd(p)
				taken += k
				line, err := lb.add(p[:k])
				if err != nil {
					if !errors.Is(err, errTooLong) || len(lb.b) < maxLine {
						t.Fatalf("%s: %v with %d bytes held", name, err, len(lb.b))
					}
					return k, false
				}
				if len(lb.b) >= maxLine {
					t.Fatalf("%s: %d bytes held", name, len(lb.b))
				}
				if line == nil {
					return k, true
				}
				reply, v := d.answer(line)
				checkReply(t, name, line, reply)
				if v == upgrade {
					if data[taken-1] != '\n' {
						t.Fatalf("%s: took %q past the STARTTLS line", name, data[:taken])
					}
					cmd, _ := verb(line)
					if name == "imap" {
						_, rest, _ := bytes.Cut(line, []byte(" "))
						cmd, _ = verb(rest)
					}
					if cmd != "STARTTLS" && cmd != "STLS" {
						t.Fatalf("%s: %q upgraded", name, line)
					}
				}
				return k, v == carryOn
			})
		}
	})
}

func checkReply(t *testing.T, name string, line []byte, reply string) {
	if reply == "" || !strings.HasSuffix(reply, "\r\n") || strings.Count(reply, "\n") != strings.Count(reply, "\r\n") {
		t.Fatalf("%s: %q answered %q", name, line, reply)
	}
	if len(reply) > 2*maxLine+100 {
		t.Fatalf("%s: %d-byte answer", name, len(reply))
	}
	if strings.ContainsAny(strings.ReplaceAll(reply, "\r\n", ""), "\r\n\x00") {
		t.Fatalf("%s: %q answered %q, a control character in it", name, line, reply)
	}
}

// The server-greeting parser on any input in any pieces: it takes whole
// pieces until the greeting ends, stops right after the greeting's last
// LF, and never takes more than maxGreeting bytes.
func FuzzGreeting(f *testing.F) {
	f.Add([]byte("220-one\r\n220 two\r\nrest"), []byte{2})
	f.Add([]byte("* OK ready\r\n* 1 EXISTS\r\n"), []byte{0})
	f.Add([]byte("+OK\r\n"), []byte{255})
	f.Add([]byte("554 no\r\n"), []byte{1})
	f.Add([]byte("220"+strings.Repeat("-", 5000)), []byte{255})
	f.Add([]byte("* OKAY\r\n+OKish\r\n220x\r\n"), []byte{3})
	f.Fuzz(func(t *testing.T, data, split []byte) {
		for name, d := range dialects {
			g := greeting{d: d}
			taken := 0
			reads(data, split, func(p []byte) (int, bool) {
				n, done, err := g.take(p)
				taken += n
				switch {
				case n > len(p) || taken > maxGreeting:
					t.Fatalf("%s: took %d of %d, %d in all", name, n, len(p), taken)
				case err != nil:
					return n, false
				case done:
					if data[taken-1] != '\n' {
						t.Fatalf("%s: the greeting ended inside a line: %q", name, data[:taken])
					}
					return n, false
				case n != len(p):
					t.Fatalf("%s: took %d of %d, not done", name, n, len(p))
				}
				return n, true
			})
		}
	})
}
