package httptunnel

import (
	"testing"

	"github.com/nproxy/nproxy/loop"
)

// BenchmarkMuxStream moves 64 KiB chunks through one stream's hot path,
// both ends in one session: Send frames them, the frames are parsed and
// dispatched back to the stream, and the stream's reader takes them out
// (giving credit back): through the stream's rings ("rings": a reader
// that is not waiting), or told at once and reading the frames in place
// ("hand-over", TestMuxHandOver). It must allocate nothing per chunk.
func BenchmarkMuxStream(b *testing.B) {
	for _, waiting := range []bool{false, true} {
		name := "rings"
		if waiting {
			name = "hand-over"
		}
		b.Run(name, func(b *testing.B) { benchmarkMuxStream(b, waiting) })
	}
}

func benchmarkMuxStream(b *testing.B, waiting bool) {
	l, err := loop.New(loop.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Discard()
	m := newSession(l, nil, &Options{}, nil)
	st, err := m.newStream(1)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	read := 0
	if waiting {
		st.s.SetHandler(reader{func(s *loop.Socket) {
			n, _ := s.Read(buf)
			read += n
		}})
		l.WatchReader(st.s)
	}
	var spare []byte // m.out while the frames in the other are dispatched
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		st.credit = muxWindowSize
		if n, err := st.Send(chunk); err != nil || n != len(chunk) {
			b.Fatalf("Send took %d of %d: %v", n, len(chunk), err)
		}
		frames := m.out
		m.out = spare[:0]
		if used := m.dispatchFrames(frames); used != len(frames) {
			b.Fatalf("dispatched %d of %d", used, len(frames))
		}
		m.handOver()
		spare = frames
		for st.in.Len() > 0 {
			n, _ := st.Recv(buf)
			read += n
		}
		m.out = m.out[:0]
	}
	if read != b.N*len(chunk) {
		b.Fatalf("read %d of %d", read, b.N*len(chunk))
	}
}
