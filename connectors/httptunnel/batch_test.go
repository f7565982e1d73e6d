package httptunnel

import (
	"bytes"
	"testing"

	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
	"golang.org/x/sys/unix"
)

// nopEnd is an ender for tunnels made by hand in tests.
type nopEnd struct{}

func (nopEnd) sendEnded(*tunnel, *loop.Socket) {}
func (nopEnd) recvEnded(*tunnel)               {}
func (nopEnd) closed(*tunnel)                  {}
func (nopEnd) hello(event, []byte) error       { return nil }

// testLoop is a loop that is never run: the tests call handlers themselves.
func testLoop(t *testing.T) *loop.Loop {
	l, err := loop.New(loop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Discard)
	return l
}

// muxTunnel is a mux tunnel made by hand, never run, with a session on
// it; its send connection is one end of a socketpair, with the transport
// tr makes of that fd unless tr is nil.
func muxTunnel(t *testing.T, tr func(fd int) loop.Transport) (*tunnel, *session) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) }) // after the loop's, which closes fds[0]
	l := testLoop(t)
	tn, err := newTunnel(l, nopEnd{}, "test", &Options{Mux: true, Key: "k", KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	tn.maxData, tn.direct = maxFrame, true
	s, err := l.Adopt(fds[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr != nil {
		s.SetTransport(tr(fds[0]))
	}
	tn.attachSend(s, nil)
	m := newSession(l, nil, &Options{}, nil)
	m.vs, m.tun = tn.vs, tn
	return tn, m
}

// pattern is n bytes that show where they were cut or reordered.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251 + seed)
	}
	return b
}

// A relay chunk of 64 KiB, framed by a mux session into its tunnel, is
// one write: its frames are more than 64 KiB, and the tunnel took them
// all before the caller's flush (it used to write 64 KiB at once and the
// last 40 bytes in a write of their own).
func TestTunnelTakesAChunkWhole(t *testing.T) {
	tn, m := muxTunnel(t, nil)
	chunk := pattern(64<<10, 0)
	for p := chunk; len(p) > 0; p = p[muxMaxData:] {
		m.queue(muxData, 1, p[:muxMaxData])
	}
	// Each mux frame is a DATA frame of the tunnel.
	if want := len(chunk) + len(chunk)/muxMaxData*(muxHeader+headerLen); tn.Buffered() != want || len(m.out) != 0 {
		t.Fatalf("the tunnel holds %d bytes and the session %d before the flush, want %d and 0", tn.Buffered(), len(m.out), want)
	}
	if tn.flush(); tn.Buffered() != 0 {
		t.Fatalf("%d bytes left after the flush", tn.Buffered())
	}
}

// handOverSession is a session with one stream whose reader (the relay,
// here a recorder) waits for it, and takes at most take bytes when told.
func handOverSession(t *testing.T, take int) (*session, *stream, *bytes.Buffer, *int) {
	l := testLoop(t)
	m := newSession(l, nil, &Options{}, nil)
	st, err := m.newStream(1)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	calls := 0
	st.s.SetHandler(reader{func(s *loop.Socket) {
		calls++
		buf := make([]byte, take)
		n, _ := s.Read(buf)
		got.Write(buf[:n])
	}})
	l.WatchReader(st.s)
	return m, st, &got, &calls
}

type reader struct{ f func(*loop.Socket) }

func (r reader) Readable(s *loop.Socket) { r.f(s) }
func (r reader) Writable(*loop.Socket)   {}

// dataFrames is payload as consecutive DATA frames of stream 1.
func dataFrames(payload []byte, size int) []byte {
	var b []byte
	for p := payload; len(p) > 0; {
		n := min(size, len(p))
		b = appendMux(b, muxData, 1, p[:n])
		p = p[n:]
	}
	return b
}

// A stream whose reader waits is told of a batch of frames at once and
// reads the payload where it lies: the eventfd is never raised and the
// rings are never used. What it leaves is kept, in order, in the rings
// (not in the batch's buffer, which is reused), and the eventfd raised.
func TestMuxHandOver(t *testing.T) {
	for _, c := range []struct {
		name         string
		size, frames int // DATA frames in one batch
		take         int // what the reader takes when told
	}{
		{"all", muxMaxData, 4, 64 << 10},
		{"part", muxMaxData, 4, 1000},
		{"more frames than views", 1000, 3 * maxViews, 64 << 10},
		{"more frames than views, part", 1000, 3 * maxViews, 2500},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, st, got, calls := handOverSession(t, c.take)
			payload := pattern(c.size*c.frames, c.frames)
			b := dataFrames(payload, c.size)
			if used := m.dispatchFrames(b); used != len(b) || m.err != nil {
				t.Fatalf("dispatched %d of %d: %v", used, len(b), m.err)
			}
			m.handOver()
			clear(b) // the tunnel's buffer, reused
			if *calls != 1 {
				t.Fatalf("the reader was told %d times, want 1", *calls)
			}
			left := len(payload) - got.Len()
			if st.in.Len() != left || st.views.Len() != 0 || st.signaled != (left > 0) {
				t.Fatalf("reader took %d: rings hold %d, views %d, eventfd raised %v; want %d, 0, %v",
					got.Len(), st.in.Len(), st.views.Len(), st.signaled, left, left > 0)
			}
			buf := make([]byte, 64<<10)
			for st.in.Len() > 0 {
				n, _ := st.Recv(buf)
				got.Write(buf[:n])
			}
			if !bytes.Equal(got.Bytes(), payload) {
				i := nproxytest.FirstDiff(got.Bytes(), payload)
				t.Fatalf("%d bytes read, first wrong at %d of %d", got.Len(), i, len(payload))
			}
			if st.signaled {
				t.Fatal("eventfd still raised with nothing to read")
			}
		})
	}
}

// countingConn is a send connection's transport that counts its writes.
type countingConn struct {
	fd     int
	writes int
}

func (c *countingConn) Recv(p []byte) (int, error) { return unix.Read(c.fd, p) }
func (c *countingConn) Send(p []byte) (int, error) {
	c.writes++
	return unix.Write(c.fd, p)
}
func (c *countingConn) CloseWrite() error { return nil }
func (c *countingConn) Close() error      { return nil }

// A WINDOW that lets a stream's held data go (a relay sends it in 16 KiB
// rings, one Send each) makes one write of the tunnel, not one per Send.
func TestMuxWindowReleaseIsOneWrite(t *testing.T) {
	var conn *countingConn
	tn, m := muxTunnel(t, func(fd int) loop.Transport {
		conn = &countingConn{fd: fd}
		return conn
	})
	st, err := m.newStream(1)
	if err != nil {
		t.Fatal(err)
	}
	st.credit = 0
	held := pattern(64<<10, 1)
	st.s.SetHandler(writer{func(*loop.Socket) {
		for len(held) > 0 {
			n, err := st.Send(held[:min(len(held), 16<<10)])
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			held = held[n:]
		}
	}})
	inc := windowIncrement(muxWindowSize)
	tn.inW = copy(tn.in, appendMux(nil, muxWindow, 1, inc[:]))
	conn.writes = 0
	m.Readable(tn.vs)
	if len(held) != 0 || tn.Buffered() != 0 || conn.writes != 1 {
		t.Fatalf("%d bytes left to send, %d queued, %d writes; want 0, 0, 1", len(held), tn.Buffered(), conn.writes)
	}
}

type writer struct{ f func(*loop.Socket) }

func (w writer) Readable(*loop.Socket)   {}
func (w writer) Writable(s *loop.Socket) { w.f(s) }

// A frame the tunnel's buffer cut stays there, to be read whole in place
// once the rest came after it: the session copies nothing out, and the
// stream's reader is told once, of all of it.
func TestMuxCutFrameReadInPlace(t *testing.T) {
	tn, m := muxTunnel(t, nil)
	st, err := m.newStream(1)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	calls := 0
	st.s.SetHandler(reader{func(s *loop.Socket) {
		calls++
		buf := make([]byte, 64<<10)
		n, _ := s.Read(buf)
		got = append(got, buf[:n]...)
	}})
	m.l.WatchReader(st.s)
	payload := pattern(muxMaxData, 2)
	frame := dataFrames(payload, muxMaxData)
	tn.inW = copy(tn.in, frame[:1000])
	m.Readable(tn.vs)
	if len(m.in) != 0 || tn.inW-tn.inR != 1000 || calls != 0 {
		t.Fatalf("cut frame: the session read %d bytes out, the tunnel holds %d, reader told %d times; want 0, 1000, 0",
			len(m.in), tn.inW-tn.inR, calls)
	}
	tn.inW += copy(tn.in[tn.inW:], frame[1000:]) // the tunnel's next read
	m.Readable(tn.vs)
	if calls != 1 || !bytes.Equal(got, payload) || tn.inW != tn.inR {
		t.Fatalf("reader told %d times, got %d bytes (first wrong at %d), tunnel holds %d; want 1, %d, all, 0",
			calls, len(got), nproxytest.FirstDiff(got, payload), tn.inW-tn.inR, len(payload))
	}
}
