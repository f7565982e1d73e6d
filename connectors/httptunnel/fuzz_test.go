package httptunnel

import (
	"bytes"
	"testing"
)

// decodeAll decodes in, split in pieces of at most step bytes, the way
// reads split a body, and returns the payload, the events and the error.
func decodeAll(in []byte, step int) ([]byte, []event, error) {
	var d decoder
	var payload []byte
	var events []event
	for len(in) > 0 {
		piece := in[:min(step, len(in))]
		in = in[len(piece):]
		for len(piece) > 0 {
			out := make([]byte, len(piece))
			used, n, ev, err := d.decode(piece, out)
			if n > used {
				panic("more payload than input")
			}
			payload = append(payload, out[:n]...)
			if err != nil {
				return payload, events, err
			}
			if ev != evNone {
				events = append(events, ev)
			}
			piece = piece[used:]
		}
	}
	return payload, events, nil
}

// FuzzDecode: any input either decodes or fails, never panics, gives no
// more payload than it had, and gives the same answer however it is split.
func FuzzDecode(f *testing.F) {
	f.Add(append(dataFrame([]byte{opOpen, 0, 1, 42}, []byte("hello")), opPad1, opClose, opDisconnect))
	f.Add(appendPadding(nil, 70000))
	f.Add([]byte{opError, 0, 3, 'b', 'a', 'd'})
	f.Add([]byte{opData, 0xff})
	f.Add([]byte{0x99})
	f.Fuzz(func(t *testing.T, in []byte) {
		p1, e1, err1 := decodeAll(in, len(in)+1)
		p2, e2, err2 := decodeAll(in, 1)
		if !bytes.Equal(p1, p2) || len(e1) != len(e2) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("split changes the result: %q %v %v vs %q %v %v", p1, e1, err1, p2, e2, err2)
		}
	})
}

// FuzzDecodeInPlace: decoding a buffer into itself, as the tunnel does,
// gives what decoding into another buffer gives.
func FuzzDecodeInPlace(f *testing.F) {
	f.Add(dataFrame(dataFrame(nil, []byte("abc")), []byte("defgh")))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, _, _ := decodeAll(in, len(in)+1)
		buf := append([]byte(nil), in...)
		var d decoder
		var got []byte
		for len(buf) > 0 {
			used, n, _, err := d.decode(buf, buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			buf = buf[used:]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("in place %q, apart %q", got, want)
		}
	})
}

// FuzzHeads: request and response heads parse or fail, within their limits.
func FuzzHeads(f *testing.F) {
	f.Add([]byte(postHead))
	f.Add([]byte(getHead))
	f.Add(responseHead(102400))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		if r, err := parseRequest(head); err == nil && r.contentLength > maxContentLength {
			t.Fatalf("Content-Length %d accepted", r.contentLength)
		}
		if n, err := parseResponse(head); err == nil && (n <= 0 || n > maxContentLength) {
			t.Fatalf("Content-Length %d accepted", n)
		}
	})
}

// appendPadding writes exactly the bytes asked, and decodes to nothing.
func TestAppendPadding(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5, 65538, 65539, 70000} {
		b := appendPadding(nil, n)
		if len(b) != n {
			t.Fatalf("padding %d: %d bytes", n, len(b))
		}
		if p, _, err := decodeAll(b, 7); err != nil || len(p) != 0 {
			t.Fatalf("padding %d decodes to %q, %v", n, p, err)
		}
	}
}

// FuzzMux: the mux frame parser takes a frame or asks for more, never
// reads beyond its input, and refuses what it does not know.
func FuzzMux(f *testing.F) {
	f.Add(appendMux(appendWindow(nil, 1, 4096), muxData, 3, []byte("hi")))
	f.Add([]byte{muxData, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{9, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		for len(in) > 0 {
			fr, size, ok, err := parseMux(in)
			if err != nil || !ok {
				return
			}
			if size > len(in) || len(fr.payload) > muxMaxData || fr.stream == 0 {
				t.Fatalf("frame %+v of size %d from %d bytes", fr, size, len(in))
			}
			in = in[size:]
		}
	})
}

// FuzzWebSocket: any bytes from a peer decode to payload or an error,
// and never more payload than bytes; ping frames queue pongs.
func FuzzWebSocket(f *testing.F) {
	c := &wsConn{client: true}
	c.frame(wsBinary, []byte("hello"))
	f.Add(false, c.out)
	s := &wsConn{}
	s.frame(wsPing, []byte("p"))
	s.frame(wsBinary, make([]byte, 300))
	s.frame(wsClose, nil)
	f.Add(true, s.out)
	f.Fuzz(func(t *testing.T, client bool, in []byte) {
		w := &wsConn{client: client, raw: append([]byte(nil), in...)}
		p := make([]byte, 100)
		total := 0
		for i := 0; i <= len(in); i++ {
			n, err := w.decode(p)
			total += n
			if err != nil || n == 0 {
				break
			}
		}
		if total > len(in) {
			t.Fatalf("%d bytes of payload from %d", total, len(in))
		}
	})
}

// FuzzWebSocketRoundTrip: what a client frames, a server reads back
// unchanged, however the bytes are split.
func FuzzWebSocketRoundTrip(f *testing.F) {
	f.Add([]byte("hello, world"), uint8(3))
	f.Add([]byte("0123456789abcdefghij"), uint8(6))
	f.Add(bytes.Repeat([]byte{7}, 70000), uint8(0))
	f.Fuzz(func(t *testing.T, payload []byte, step uint8) {
		c := &wsConn{client: true}
		for p := payload; len(p) > 0; p = p[min(len(p), wsMaxFrame):] {
			c.frame(wsBinary, p[:min(len(p), wsMaxFrame)])
		}
		w := &wsConn{}
		var got []byte
		buf := make([]byte, 1000)
		for wire := c.out; len(wire) > 0 || len(w.raw) > w.rawOff; {
			k := min(len(wire), int(step)+1)
			w.raw = append(w.raw, wire[:k]...)
			wire = wire[k:]
			for {
				n, err := w.decode(buf)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				got = append(got, buf[:n]...)
			}
			if k == 0 {
				break
			}
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("read %d bytes back of %d, or different ones", len(got), len(payload))
		}
	})
}

// dataFrame appends a DATA frame carrying p.
func dataFrame(b, p []byte) []byte { return appendData(b, nil, p, 0, len(p)) }

// appendWindow appends a WINDOW frame.
func appendWindow(b []byte, stream uint32, inc int) []byte {
	p := windowIncrement(inc)
	return appendMux(b, muxWindow, stream, p[:])
}
