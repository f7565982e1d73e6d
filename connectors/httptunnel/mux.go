package httptunnel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nproxy/nproxy/buffer"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// muxFreeRings bounds the free receive buffers a session keeps: a bulk
// stream needs a few, and an idle one none.
const muxFreeRings = 32

// muxOutCap bounds the frames a session holds for its tunnel; streams wait
// (their relay is told later) while it is full.
const muxOutCap = 256 << 10

// session multiplexes streams over one tunnel between two nproxies. It is
// the handler of the tunnel's socket (vs), reading and writing payload
// through the tunnel's transport as the relay would; each stream is a
// socket of its own (a vsock) that the relay joins to a client or server.
// A stream holds at most muxWindowSize bytes its reader has not taken, and
// its sender sends no more than that (WINDOW frames give credit back), so a
// stream whose reader stalls stops only its own sender.
type session struct {
	l         *loop.Loop
	connector any
	hook      loop.Hook // for the streams' sockets
	opts      *Options
	h         connectors.Handler // the server's proxy, for new streams
	vs        *loop.Socket       // the tunnel; nil until it is up
	tun       *tunnel            // vs's transport, unless a WebSocket
	streams   map[uint32]*stream
	lastID    uint32
	in        []byte
	out       []byte
	outOff    int
	waiting   []*stream    // streams refused for want of room in out
	ready     []*stream    // streams holding views of the frames being dispatched
	batch     bool         // frames are being dispatched: flush waits for the end
	rings     *buffer.Pool // the streams' receive buffers
	err       error
	logged    bool // err is in the log already
	onEnd     func()
}

func newSession(l *loop.Loop, connector any, o *Options, h connectors.Handler) *session {
	return &session{l: l, connector: connector, opts: o, h: h, streams: map[uint32]*stream{},
		in: make([]byte, 0, 64<<10), rings: buffer.NewPool(muxMaxData, muxFreeRings)}
}

// Accepted implements connectors.Handler for the tunnel under the session:
// never called.
func (m *session) Accepted(*loop.Loop, *loop.Socket) {}

// Connected implements connectors.Handler: the tunnel is up, the session
// runs on it.
func (m *session) Connected(l *loop.Loop, _, vs *loop.Socket) {
	m.vs = vs
	vs.SetHandler(m)
	if t, ok := vs.Transport().(*tunnel); ok {
		t.direct = true // Readable reads until EAGAIN
		m.tun = t
	}
	l.WatchReader(vs)
	m.flush()
	// Frames may have come with the WebSocket's upgrade.
	m.Readable(vs)
}

// Failed implements connectors.Handler: the tunnel could not be set up,
// and said why in the log already.
func (m *session) Failed(_ *loop.Loop, _ *loop.Socket, err error) {
	m.logged = true
	m.die(err)
}

// open starts a stream (the client's side) and hands it to the proxy.
func (m *session) open(client *loop.Socket, h connectors.Handler) {
	m.lastID += 1 + m.lastID%2 // odd ids: 1, 3, 5...
	st, err := m.newStream(m.lastID)
	if err != nil {
		h.Failed(m.l, client, err)
		return
	}
	m.queue(muxOpen, st.id, nil)
	m.flush()
	h.Connected(m.l, client, st.s)
}

// Readable reads the tunnel's payload and dispatches its frames. What
// they make the streams send (the data a WINDOW lets go, WINDOWs for what
// the readers took) goes out in one write at the end: a relay holding a
// chunk for a stream out of credit sends it in 16 KiB rings, and each
// Send wrote alone.
func (m *session) Readable(vs *loop.Socket) {
	if !m.batch {
		m.batch = true
		defer m.endBatch()
	}
	for m.err == nil {
		if m.tun != nil && len(m.in) == 0 {
			used := m.dispatchFrames(m.tun.held())
			m.handOver()
			m.tun.consume(used)
			if m.err == nil && m.tun.cut() {
				return
			}
		}
		if m.err != nil {
			return
		}
		if len(m.in) == cap(m.in) {
			m.die(errors.New("mux frame longer than the read buffer"))
			return
		}
		n, err := vs.Read(m.in[len(m.in):m.readEnd()])
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			m.die(fmt.Errorf("tunnel: %w", err))
			return
		case n == 0:
			m.die(errors.New("tunnel closed by the peer"))
			return
		}
		m.in = m.in[:len(m.in)+n]
		used := m.dispatchFrames(m.in)
		m.handOver()
		m.in = m.in[:copy(m.in, m.in[used:])]
	}
}

// readEnd bounds the next read into in. From a tunnel, no further than
// the end of the frame its buffer cut (all it holds when in is empty):
// the frames after it are parsed where the tunnel decoded them. (A tunnel
// that goes on reads the rest of a cut frame in place, after it: see
// cut. Only the end of the tunnel leaves one to read here.)
func (m *session) readEnd() int {
	switch {
	case m.tun == nil || len(m.in) == 0:
		return cap(m.in)
	case len(m.in) < muxHeader:
		return muxHeader
	}
	return muxHeader + int(binary.BigEndian.Uint16(m.in[5:7]))
}

// dispatchFrames dispatches the whole frames at the start of b and says
// how many bytes they took.
func (m *session) dispatchFrames(b []byte) int {
	used := 0
	for m.err == nil {
		f, size, ok, err := parseMux(b[used:])
		if err != nil {
			m.die(err)
		}
		if !ok {
			break
		}
		m.dispatch(f)
		used += size
	}
	return used
}

// handOver lets the streams that received payload in the frames just
// dispatched read it where it lies (views), before the buffer under it is
// reused; what a reader leaves goes to the stream's rings. A reader told
// at once, rather than through its eventfd, saves an eventfd write and
// read and a poller event per batch, and the copy into the rings.
func (m *session) handOver() {
	for i, st := range m.ready {
		m.ready[i] = nil
		st.ready = false
		if st.in.Len()+st.views.Len() > 0 {
			m.l.Notify(st.s, true, false)
		}
		st.spill()
		st.sync()
	}
	m.ready = m.ready[:0]
}

// endBatch sends what the frames of a batch made the streams queue.
func (m *session) endBatch() {
	m.batch = false
	m.flush()
}

// Writable sends what the session holds: the tunnel has room again.
func (m *session) Writable(*loop.Socket) { m.flush() }

func (m *session) dispatch(f muxFrame) {
	st := m.streams[f.stream]
	switch {
	case f.typ == muxOpen:
		m.accept(f.stream)
	case st == nil:
		// A stream closed here while its peer was still sending.
	case f.typ == muxData:
		st.receive(f.payload)
	case f.typ == muxWindow:
		st.credit += int(binary.BigEndian.Uint32(f.payload))
		st.wake()
	case f.typ == muxFin:
		st.peerFin = true
		st.sync()
	case f.typ == muxRst:
		st.reset()
	}
}

// accept opens a stream the client asked for (the server's side).
func (m *session) accept(id uint32) {
	switch {
	case m.h == nil || id%2 == 0 || id <= m.lastID:
		m.die(fmt.Errorf("mux stream %d opened out of order", id))
		return
	case len(m.streams) >= m.opts.maxStreams():
		m.die(fmt.Errorf("mux client opened more than %d streams", m.opts.maxStreams()))
		return
	}
	m.lastID = id
	st, err := m.newStream(id)
	if err != nil {
		m.die(err)
		return
	}
	// The session's client (a PROXY header's, if one came) is each
	// stream's, for logs and send_proxy.
	if a := m.vs.RemoteAddr(); a.IsValid() {
		st.s.SetRemoteAddr(a)
		st.s.SetLocalAddr(m.vs.LocalAddr())
		st.s.SetNick(fmt.Sprintf("%s (mux stream %d)", a, id))
	}
	m.h.Accepted(m.l, st.s)
}

// send queues a frame and sends what it can.
func (m *session) send(typ byte, id uint32, payload []byte) {
	m.queue(typ, id, payload)
	m.flush()
}

// queue adds a frame for the tunnel. While the session holds nothing
// before it, the frame goes straight into the tunnel's own buffer: a copy
// less per byte than through out. What the tunnel does not take (its
// buffer full, its body being replaced) waits in out, as whole frames do
// on a WebSocket.
func (m *session) queue(typ byte, id uint32, payload []byte) {
	if m.tun == nil || m.outOff < len(m.out) {
		m.out = appendMux(m.out, typ, id, payload)
		return
	}
	var h [muxHeader]byte
	putMuxHeader(h[:], typ, id, len(payload))
	k := m.tun.queue(h[:], payload)
	if rest := len(h) + len(payload) - k; rest > 0 {
		m.out = appendSpan(m.out, h[:], payload, k, rest)
	}
}

// room is how much more the session takes from streams now.
func (m *session) room() int { return muxOutCap - (len(m.out) - m.outOff) }

// flush writes held frames into the tunnel, then lets waiting streams go
// on once half the room is free.
func (m *session) flush() {
	if m.vs == nil || m.err != nil || m.batch {
		return
	}
	f, _ := m.vs.Transport().(loop.Flusher)
	if f.Buffered() > 0 {
		if err := f.Flush(); err != nil && err != unix.EAGAIN {
			m.die(fmt.Errorf("tunnel: %w", err))
			return
		}
	}
	for m.outOff < len(m.out) {
		n, err := m.vs.Write(m.out[m.outOff:])
		if n > 0 {
			m.outOff += n
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			m.die(fmt.Errorf("tunnel: %w", err))
			return
		}
	}
	// A WebSocket holds what its fd did not take (a tunnel tells the
	// session itself when it has room: Notify).
	if f.Buffered() > 0 && f.FdBlocked() {
		m.l.WatchWriter(m.vs)
	} else {
		m.l.UnwatchWriter(m.vs)
	}
	if m.outOff == len(m.out) {
		m.out, m.outOff = m.out[:0], 0
	} else if m.outOff > muxOutCap {
		m.out, m.outOff = m.out[:copy(m.out, m.out[m.outOff:])], 0
	}
	if m.room() >= muxOutCap/2 && len(m.waiting) > 0 {
		// Woken from a posted function, not from here: flush runs inside
		// a stream's Send, and a relay told to write to that stream
		// before Send returned would not know what Send left it.
		waiting := m.waiting
		m.waiting = nil
		m.l.Post(func() {
			for _, st := range waiting {
				st.queued = false
				st.wake()
			}
		})
	}
}

// die ends the session: one log line, every stream reset, the tunnel
// closed.
func (m *session) die(err error) {
	if m.err != nil {
		return
	}
	m.err = err
	if !m.logged {
		m.l.Logger().Error(fmt.Sprintf("httptunnel mux session: %v", err))
	}
	for _, st := range m.streams {
		st.reset()
	}
	if m.vs != nil {
		m.l.Close(m.vs)
	}
	if m.onEnd != nil {
		m.onEnd()
	}
}

// stream is one connection of a session, the transport of its vsock.
type stream struct {
	vsock
	m       *session
	id      uint32
	in      buffer.Queue // payload its reader has not taken (rings of m.rings)
	views   views        // then payload still in the frames being dispatched (handOver)
	unacked int          // bytes taken since the last WINDOW sent
	credit  int          // bytes the peer still takes
	peerFin bool
	eofSeen bool
	rst     bool
	finSent bool
	queued  bool // in m.waiting
	ready   bool // in m.ready
}

func (m *session) newStream(id uint32) (*stream, error) {
	st := &stream{m: m, id: id, credit: muxWindowSize}
	v, err := newVsock(m.l, st, fmt.Sprintf("mux stream %d", id))
	if err != nil {
		return nil, err
	}
	st.vsock = v
	st.s.Connector, st.s.Hook = m.connector, m.hook
	m.streams[id] = st
	return st, nil
}

// receive takes DATA: a sender that exceeds the window breaks the protocol.
// The bytes go to rings of the session's pool, given back as the reader
// takes them: no allocation per frame, and an idle stream holds none.
//
// While the stream's reader waits for it (the relay watches the stream),
// the bytes stay where they are, views into the frames, until the batch
// is dispatched (handOver).
func (st *stream) receive(p []byte) {
	if st.in.Len()+st.views.Len()+st.unacked+len(p) > muxWindowSize {
		st.m.die(fmt.Errorf("mux stream %d sent beyond its window", st.id))
		return
	}
	if len(p) == 0 {
		return
	}
	if st.s.Reading() && !st.s.Closed() {
		if !st.ready {
			st.ready = true
			st.m.ready = append(st.m.ready, st)
		}
		if !st.views.add(p) {
			// More frames than views: the rings keep their order.
			st.spill()
			st.in.Push(st.m.rings, p)
		}
		return // handOver tells the reader
	}
	st.in.Push(st.m.rings, p)
	st.sync()
}

// spill moves what the reader left of the views to the rings.
func (st *stream) spill() {
	for st.views.Len() > 0 {
		p := st.views.peek()
		st.in.Push(st.m.rings, p)
		st.views.discard(len(p))
	}
}

func (st *stream) sync() {
	st.signal(st.in.Len() > 0 || st.rst || st.peerFin && !st.eofSeen)
}

// reset ends the stream both ways; the relay learns it from Recv and Send.
func (st *stream) reset() {
	if st.rst {
		return
	}
	st.rst = true
	st.sync()
	st.wake()
}

// wake tells the relay it may send again.
func (st *stream) wake() {
	if !st.s.Closed() {
		st.m.l.Notify(st.s, false, true)
	}
}

// Recv implements loop.Transport: payload, with credit given back to the
// sender once half the window was taken: a WINDOW per quarter cost a
// frame, a write and the sender's wake-up per 64 KiB, and half still
// leaves the sender half a window to go on with meanwhile.
func (st *stream) Recv(p []byte) (int, error) {
	defer st.sync()
	if st.in.Len() > 0 || st.views.Len() > 0 {
		n := 0
		for n < len(p) && st.in.Len() > 0 {
			k := copy(p[n:], st.in.Peek())
			st.in.Discard(st.m.rings, k)
			n += k
		}
		for n < len(p) && st.views.Len() > 0 {
			k := copy(p[n:], st.views.peek())
			st.views.discard(k)
			n += k
		}
		st.unacked += n
		if st.unacked >= muxWindowSize/2 && !st.rst {
			inc := windowIncrement(st.unacked)
			st.m.queue(muxWindow, st.id, inc[:])
			st.unacked = 0
			st.m.flush()
		}
		return n, nil
	}
	switch {
	case st.rst:
		return 0, unix.ECONNRESET
	case st.peerFin:
		st.eofSeen = true
		return 0, nil
	}
	return 0, unix.EAGAIN
}

// Send implements loop.Transport: DATA within the stream's credit and the
// session's room.
func (st *stream) Send(p []byte) (int, error) {
	if st.rst || st.m.err != nil {
		return 0, unix.ECONNRESET
	}
	taken := 0
	for taken < len(p) && st.credit > 0 && st.m.room() > 0 {
		n := min(len(p)-taken, st.credit, muxMaxData, st.m.room())
		st.m.queue(muxData, st.id, p[taken:taken+n])
		st.credit -= n
		taken += n
	}
	if taken < len(p) && st.credit > 0 && !st.queued {
		// Out of session room, not of credit: wait for the session.
		st.queued = true
		st.m.waiting = append(st.m.waiting, st)
	}
	st.m.flush()
	if taken == 0 {
		return 0, unix.EAGAIN
	}
	return taken, nil
}

// CloseWrite implements loop.Transport: FIN.
func (st *stream) CloseWrite() error {
	if !st.rst && !st.finSent {
		st.finSent = true
		st.m.send(muxFin, st.id, nil)
	}
	return nil
}

// Close implements loop.Transport: a stream closed before both ends said
// FIN is reset.
func (st *stream) Close() error {
	if !st.rst && !(st.finSent && st.peerFin) && st.m.err == nil {
		st.m.send(muxRst, st.id, nil)
	}
	st.rst = true
	st.in.Reset(st.m.rings)
	st.views = views{}
	delete(st.m.streams, st.id)
	return nil
}

// Flush implements loop.Flusher: the session holds the stream's frames.
func (st *stream) Flush() error { return nil }

// Buffered implements loop.Flusher.
func (st *stream) Buffered() int { return 0 }

// FdBlocked implements loop.Flusher: the eventfd takes nothing; the
// session wakes the stream (wake).
func (st *stream) FdBlocked() bool { return false }
