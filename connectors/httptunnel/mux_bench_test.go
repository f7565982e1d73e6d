package httptunnel

import (
	"testing"

	"github.com/nproxy/nproxy/loop"
)

// BenchmarkMuxStream moves 64 KiB chunks through one stream's hot path,
// both ends in one session: Send frames them, the frames are parsed and
// dispatched back to the stream, and Recv takes them out (giving credit
// back). It must allocate nothing per chunk.
func BenchmarkMuxStream(b *testing.B) {
	l, err := loop.New(loop.Config{})
	if err != nil {
		b.Fatal(err)
	}
	m := newSession(l, nil, &Options{}, nil)
	st, err := m.newStream(1)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		st.credit = muxWindowSize
		if n, err := st.Send(chunk); err != nil || n != len(chunk) {
			b.Fatalf("Send took %d of %d: %v", n, len(chunk), err)
		}
		rest := m.out
		for len(rest) > 0 {
			f, size, ok, err := parseMux(rest)
			if err != nil || !ok {
				b.Fatalf("parse: %v %v", ok, err)
			}
			m.dispatch(f)
			rest = rest[size:]
		}
		m.out = m.out[:0]
		for st.in.Len() > 0 {
			st.Recv(buf)
		}
		m.out = m.out[:0]
	}
}
