package proxyproto

import (
	"bytes"
	"testing"
)

// TestFrameTakesOnlyTheHeader: the bytes after a header are never counted,
// whichever way the header is cut.
func TestFrameTakesOnlyTheHeader(t *testing.T) {
	v1 := []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
	v2 := append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"), 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2)
	for _, h := range [][]byte{v1, v2} {
		stream := append(append([]byte{}, h...), "\x16\x03\x01 more"...)
		for cut := 1; cut <= len(stream); cut++ {
			n, complete, err := frame(stream[:cut], 0)
			if err != nil {
				t.Fatalf("%q: %v", stream[:cut], err)
			}
			if complete != (cut >= len(h)) || n > len(h) || complete && n != len(h) {
				t.Fatalf("%q: n %d complete %v, header is %d bytes", stream[:cut], n, complete, len(h))
			}
		}
	}
}

// FuzzFrame: framing and parsing any bytes never panics, never takes more
// than it was given nor more than the limits, and a complete header is
// parsed without a panic.
func FuzzFrame(f *testing.F) {
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET /"), 0)
	f.Add([]byte("PROXY UNKNOWN\r\n"), 1)
	f.Add([]byte("PROXY TCP6 ::1 ::1 1 2\r\n"), 1)
	f.Add(append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0f"), 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 2, 0, 0), 2)
	f.Add(append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x10"), 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0x20, 0, 1, 1), 2)
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"), 0)
	f.Fuzz(func(t *testing.T, data []byte, version int) {
		version = (version%3 + 3) % 3
		n, complete, err := frame(data, version)
		if err != nil {
			return
		}
		if n > len(data) || n > MaxV2Header {
			t.Fatalf("took %d of %d bytes", n, len(data))
		}
		if complete {
			Parse(bytes.Clone(data[:n]))
		}
	})
}
