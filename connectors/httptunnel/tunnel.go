package httptunnel

import (
	"errors"
	"fmt"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// bufSize bounds each direction of a tunnel: frames waiting for the send
// connection, and payload decoded from the receive connection.
const bufSize = 64 << 10

// outCap is what the send buffer takes before it is written: a relay
// chunk of bufSize payload becomes more than bufSize of frames (GNU and mux
// headers), and without the slack its last few bytes went out in a write
// of their own, a syscall and a loopback segment more per chunk.
const outCap = bufSize + 1<<10

// ender is what differs between the two ends of a tunnel: how a new send or
// receive connection comes. The client dials new requests; the server waits
// for the client's.
type ender interface {
	// sendEnded is told that the send connection s ended its body, and
	// owns s from now on: a new one must come.
	sendEnded(t *tunnel, s *loop.Socket)
	// recvEnded is told that the receive connection ended its body.
	recvEnded(t *tunnel)
	// closed is told that the tunnel is over.
	closed(t *tunnel)
	// hello is told of the session's first frame, OPEN or opMux (with its
	// payload); an error ends the tunnel.
	hello(ev event, payload []byte) error
}

// tunnel is one GNU httptunnel session. To the relay it is the transport of
// vs, a socket made of an eventfd: the eventfd is readable exactly while the
// tunnel holds something for the relay to read (payload, the end, a
// failure), so that the relay's own read interest and backpressure work on
// it as on any socket. The tunnel's HTTP connections are loop sockets of
// their own, which come and go as bodies are used up.
type tunnel struct {
	l    *loop.Loop
	vs   *loop.Socket // vsock.s, for short
	end  ender
	name string

	contentLength int // of the bodies this side sends
	maxData       int // the longest DATA frame sent
	strict        bool
	keepAlive     time.Duration
	maxAge        time.Duration

	// Receiving: payload decoded from recv, waiting for the relay.
	recv      *loop.Socket
	recvLeft  int64 // body bytes still to come on recv
	dec       decoder
	in        []byte
	inR, inW  int
	paused    bool // recv is not read: in is full
	peerClose bool // CLOSE read: after in drains, Recv reports EOF
	eofSeen   bool // Recv reported EOF

	// Sending: frames waiting for send, which carries a body of
	// contentLength bytes, the last kept for DISCONNECT.
	send      *loop.Socket
	out       []byte
	outOff    int
	room      int  // frame bytes the current body still takes
	rotating  bool // DISCONNECT queued: send ends once out drains
	sendStart time.Time
	wrote     bool // something was sent since the last keep-alive tick
	closeWant bool // the relay asked for CloseWrite
	closeSent bool // CLOSE queued

	vsock
	// direct says that vs's handler reads until EAGAIN whenever it is
	// called (a mux session does; the relay does not, under backpressure),
	// so decoded payload is handed to it at once (deliver).
	direct  bool
	err     error // the tunnel failed
	done    bool  // the transport was closed
	lingerT *loop.Timer
}

// newTunnel makes a tunnel and its socket for the relay.
func newTunnel(l *loop.Loop, end ender, name string, o *Options) (*tunnel, error) {
	t := &tunnel{
		l: l, end: end, name: name,
		contentLength: o.contentLength(),
		strict:        o.Strict,
		keepAlive:     o.keepAlive(),
		maxAge:        o.maxAge(),
		maxData:       maxData,
		// Slack beyond bufSize: the body bytes that came with a head are
		// decoded whatever payload is still waiting (see recvConn).
		in: make([]byte, bufSize+maxHead+16),
	}
	var err error
	if t.vsock, err = newVsock(l, t, name); err != nil {
		return nil, err
	}
	t.vs = t.vsock.s
	t.armKeepAlive()
	return t, nil
}

// ---- the transport the relay sees ----

// Recv implements loop.Transport: decoded payload, then EOF once the peer
// sent CLOSE.
func (t *tunnel) Recv(p []byte) (int, error) {
	defer t.sync()
	if t.inW > t.inR {
		n := copy(p, t.held())
		t.consume(n)
		return n, nil
	}
	switch {
	case t.err != nil:
		return 0, unix.EIO
	case t.peerClose:
		t.eofSeen = true
		return 0, nil
	}
	return 0, unix.EAGAIN
}

// held is the decoded payload not taken yet: a mux session parses its
// frames where they lie (consume), a copy less than through Recv.
func (t *tunnel) held() []byte { return t.in[t.inR:t.inW] }

// cut reports that held is the start of a frame its reader waits to see
// whole, and that the rest may still come: the receive connection reads
// it in place, after what is held (compact moves that to the front, and
// a mux frame is far shorter than the buffer), and deliver calls the
// reader again. Reading the start out of the tunnel instead cost a copy,
// and a batch of its own for the rest of the frame (a write of its
// stream's reader) nearly every 64 KiB.
func (t *tunnel) cut() bool {
	return t.inW > t.inR && t.err == nil && !t.peerClose && !t.done
}

// consume drops the first n bytes of held, as taken.
func (t *tunnel) consume(n int) {
	t.inR += n
	if t.inR == t.inW {
		t.inR, t.inW = 0, 0
	}
	t.resume()
}

// Send implements loop.Transport: p becomes DATA frames in the current
// body, as much as the send connection takes now. Whatever it refuses, the
// relay is told later (wakeWriter) to send again: the send connection is
// then watched, or a new one is coming.
func (t *tunnel) Send(p []byte) (int, error) {
	taken := t.queue(nil, p)
	t.flush()
	switch {
	case t.err != nil:
		return 0, unix.EIO
	case t.closeWant:
		return 0, unix.EPIPE
	case taken == 0:
		return 0, unix.EAGAIN
	}
	return taken, nil
}

// queue makes head then body, as one run of payload, DATA frames in the
// current body, as much as the send connection takes now, and says how
// many bytes of the two it took. It writes only when its buffer is full:
// the caller flushes. Two parts, so that a mux session puts its frame
// header and the stream's bytes here without joining them first.
func (t *tunnel) queue(head, body []byte) int {
	size := len(head) + len(body)
	taken := 0
	for taken < size && t.err == nil && !t.closeWant && t.send != nil && !t.rotating {
		if len(t.out)-t.outOff >= outCap {
			// Full: one write for all the frames queued (a write per
			// frame cost a syscall per 64 KiB or less), then go on with
			// what it freed.
			if t.flush(); t.send == nil || len(t.out)-t.outOff > bufSize/2 {
				break
			}
			continue
		}
		if t.maxAge > 0 && time.Since(t.sendStart) > t.maxAge {
			t.endBody()
			break
		}
		n := min(size-taken, t.room-headerLen, t.maxData, outCap-(len(t.out)-t.outOff))
		t.out = appendData(t.out, head, body, taken, n)
		t.room -= headerLen + n
		taken += n
		t.wrote = true
		if t.room <= headerLen {
			t.endBody()
		}
	}
	return taken
}

// CloseWrite implements loop.Transport: CLOSE goes out after what is queued.
func (t *tunnel) CloseWrite() error {
	t.closeWant = true
	t.queueClose()
	return nil
}

// Close implements loop.Transport. What is still queued (a CLOSE, last
// data) is given a bounded time to go out.
func (t *tunnel) Close() error {
	if t.done {
		return nil
	}
	t.done = true
	t.vs.StopTimer()
	// The peer learns the end, whoever closes: GNU's tunnel_close sends
	// CLOSE too.
	t.queueClose()
	if t.send != nil && t.err == nil && t.Buffered() > 0 {
		t.lingerT = t.l.AfterFunc(lingerTime, t.shutdown)
		t.closeRecv()
		return nil
	}
	t.shutdown()
	return nil
}

// lingerTime bounds how long a closed tunnel tries to send what it queued.
const lingerTime = 5 * time.Second

// Flush implements loop.Flusher.
func (t *tunnel) Flush() error {
	t.flush()
	switch {
	case t.err != nil:
		return unix.EIO
	case t.Buffered() > 0:
		return unix.EAGAIN
	}
	return nil
}

// Buffered implements loop.Flusher: frames not yet sent (by the send
// connection's TLS either), so that the relay neither shuts nor closes the
// tunnel before they are.
func (t *tunnel) Buffered() int {
	n := len(t.out) - t.outOff
	if f, ok := t.sendTransport().(loop.Flusher); ok {
		n += f.Buffered()
	}
	return n
}

func (t *tunnel) sendTransport() loop.Transport {
	if t.send == nil {
		return nil
	}
	return t.send.Transport()
}

// FdBlocked implements loop.Flusher: the eventfd never takes frames; the
// tunnel tells the relay itself (Notify) when it has room again.
func (t *tunnel) FdBlocked() bool { return false }

// ---- sending ----

// attachSend makes s the send connection: head starts its body, which
// takes contentLength bytes.
func (t *tunnel) attachSend(s *loop.Socket, head []byte) {
	t.send = s
	s.SetHandler(sendConn{t})
	t.out = append(t.out[:0], t.out[t.outOff:]...)
	t.outOff = 0
	t.out = append(t.out, head...)
	t.room = t.contentLength - 1
	t.rotating = false
	t.sendStart = time.Now()
	t.l.WatchReader(s)
	if t.closeWant {
		t.queueClose()
	}
	t.flush()
	t.wakeWriter()
}

// queueClose queues CLOSE (padding first, if strict) once a body is open.
func (t *tunnel) queueClose() {
	if t.closeSent || t.send == nil || t.rotating {
		return
	}
	t.closeSent = true
	if t.strict {
		t.out = appendPadding(t.out, t.room-1)
	}
	t.out = append(t.out, opClose)
	t.room = 0
	t.rotating = true
	t.flush()
}

// endBody fills the body (with padding where strict, or when a frame
// could not fit) and ends it with DISCONNECT.
func (t *tunnel) endBody() {
	if t.strict || t.room <= headerLen {
		t.out = appendPadding(t.out, t.room)
	}
	t.out = append(t.out, opDisconnect)
	t.room = 0
	t.rotating = true
}

// flush writes queued frames to the send connection; once a finished body
// is out, that connection is closed and a new one asked for.
func (t *tunnel) flush() {
	s := t.send
	if s == nil || t.err != nil {
		return
	}
	for t.outOff < len(t.out) {
		n, err := s.Write(t.out[t.outOff:])
		if n > 0 {
			t.outOff += n
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.fail(fmt.Errorf("sending: %w", err))
			return
		}
	}
	// Under TLS, the body is out once the engine has sent it all too.
	held, err := flushConn(s)
	switch {
	case err != nil:
		t.fail(fmt.Errorf("sending: %w", err))
		return
	case t.outOff < len(t.out) && s.Transport() == nil:
		t.l.WatchWriter(s)
		return
	case t.outOff < len(t.out) || held:
		return // the engine wakes sendConn when it has room
	}
	t.out, t.outOff = t.out[:0], 0
	t.l.UnwatchWriter(s)
	switch {
	case t.done:
		t.shutdown() // the linger is over
	case t.rotating:
		t.bodySent(s)
	}
}

// bodySent lets go of the send connection s, whose body is all sent.
func (t *tunnel) bodySent(s *loop.Socket) {
	t.send = nil
	s.SetHandler(nil)
	t.l.UnwatchReader(s)
	if t.closeSent {
		t.l.Close(s)
	} else {
		t.end.sendEnded(t, s)
	}
}

// wakeWriter tells the relay that the tunnel moved frames out: it may
// hold data the tunnel refused or did not take whole, or wait for the
// tunnel to drain before it shuts it. It runs only from the send
// connection's own events, never inside a call of the relay.
func (t *tunnel) wakeWriter() {
	if !t.done && t.send != nil && !t.rotating && len(t.out)-t.outOff < bufSize/2 {
		t.l.Notify(t.vs, false, true)
	}
}

// sendConn handles the send connection's events: it becomes writable, or
// the peer ends it.
type sendConn struct{ t *tunnel }

func (c sendConn) Writable(s *loop.Socket) {
	c.t.flush()
	c.t.wakeWriter()
}

// Readable drains what the peer sends back on a send connection (nothing,
// normally: hts never answers a POST) and notices its end.
func (c sendConn) Readable(s *loop.Socket) {
	var junk [512]byte
	n, err := s.Read(junk[:])
	if err == unix.EAGAIN || n > 0 {
		return
	}
	t := c.t
	if t.rotating && !t.done && t.outOff == len(t.out) {
		// The whole body went to TLS, whose last bytes the server read
		// (and closed) before the engine told us they were out.
		t.out, t.outOff = t.out[:0], 0
		t.l.UnwatchWriter(s)
		t.bodySent(s)
		return
	}
	t.send = nil
	t.l.Close(s)
	switch {
	case t.done:
		t.shutdown()
	case t.closeSent && t.Buffered() == 0:
	default:
		t.out, t.outOff = t.out[:0], 0
		t.end.sendEnded(t, nil)
	}
}

// armKeepAlive sends PAD1 when nothing was sent for a keep-alive period,
// as GNU does, so that proxies keep the requests open.
func (t *tunnel) armKeepAlive() {
	if t.keepAlive <= 0 {
		return
	}
	t.vs.SetTimer(t.keepAlive, func() {
		if !t.wrote && t.send != nil && !t.rotating && t.room > 1 {
			t.out = append(t.out, opPad1)
			t.room--
			t.flush()
		}
		t.wrote = false
		t.armKeepAlive()
	})
}

// ---- receiving ----

// attachRecv makes s the receive connection: its body has length bytes,
// of which rest came with the head.
func (t *tunnel) attachRecv(s *loop.Socket, length int64, rest []byte) {
	t.recv = s
	t.recvLeft = length
	s.SetHandler(recvConn{t})
	if len(rest) > 0 && !t.take(rest) {
		return
	}
	t.resume()
	if !t.paused {
		t.l.WatchReader(s)
		poke(s, recvConn{t})
	}
}

// recvConn handles the receive connection's events.
type recvConn struct{ t *tunnel }

// Writable flushes what TLS holds (a GET just written).
func (c recvConn) Writable(s *loop.Socket) {
	if _, err := flushConn(s); err != nil {
		c.t.fail(fmt.Errorf("receiving: %w", err))
	}
}

// Readable reads as much as the payload buffer has room for: a frame's
// payload is never longer than the frame, so it always fits.
func (c recvConn) Readable(s *loop.Socket) {
	t := c.t
	for t.recv == s && !t.paused {
		t.compact()
		room := min(bufSize-t.inW, int(min(t.recvLeft, bufSize)))
		if room <= 0 {
			t.pause()
			return
		}
		n, err := s.Read(t.in[t.inW : t.inW+room])
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			t.fail(fmt.Errorf("receiving: %w", err))
			return
		case n == 0:
			if t.dec.state != 0 {
				t.fail(errors.New("body ended inside a frame"))
				return
			}
			t.recvDone()
			return
		}
		if !t.take(t.in[t.inW : t.inW+n]) {
			return
		}
		if n < room && s.Transport() == nil {
			// A short read drained the fd: reading again would only cost
			// an EAGAIN; level-triggered, epoll tells when more comes.
			// (TLS may hold more than it returned: it is asked again.)
			return
		}
	}
}

// take decodes raw body bytes (which may sit in t.in just after the
// payload) and acts on what they say. It reports whether the connection
// is still the one to read.
func (t *tunnel) take(raw []byte) bool {
	t.recvLeft -= int64(len(raw))
	if t.recvLeft < 0 {
		t.fail(errors.New("more body than its Content-Length"))
		return false
	}
	// Compacting never reaches raw when it lies in t.in: it moves only
	// bytes before t.inW.
	t.compact()
	for len(raw) > 0 {
		used, n, ev, err := t.dec.decode(raw, t.in[t.inW:])
		t.inW += n
		raw = raw[used:]
		if err != nil {
			t.fail(err)
			return false
		}
		switch ev {
		case evOpen, evMux:
			if err := t.end.hello(ev, t.dec.msg[:t.dec.msgN]); err != nil {
				t.fail(err)
				return false
			}
		case evClose:
			t.peerClose = true
		case evDisconnect:
			t.recvDone()
			t.deliver()
			return false
		}
	}
	if t.recvLeft == 0 {
		t.recvDone()
		t.deliver()
		return false
	}
	t.deliver()
	// The reader deliver called may have ended the tunnel, and with it
	// the receive connection.
	return t.recv != nil
}

// deliver hands decoded payload to a reader that always takes it all (a
// mux session: see direct) by calling it at once, so that the eventfd is
// never raised, and then syncs the eventfd for whatever is left. Through
// the eventfd, every 64 KiB read cost an eventfd write and read, an
// epoll_wait and the pause and resume of the receive connection (two
// epoll_ctl), as the buffer filled before the reader ran.
func (t *tunnel) deliver() {
	if t.direct && t.inW > t.inR && !t.done && t.err == nil {
		t.l.Notify(t.vs, true, false)
	}
	t.sync()
}

// compact moves unread payload to the front of in.
func (t *tunnel) compact() {
	if t.inR > 0 {
		t.inW = copy(t.in, t.in[t.inR:t.inW])
		t.inR = 0
	}
}

// recvDone ends the receive connection's body and asks for the next,
// unless the peer closed the tunnel.
func (t *tunnel) recvDone() {
	if s := t.recv; s != nil {
		t.recv = nil
		t.paused = false
		t.l.Close(s)
	}
	t.dec = decoder{}
	if !t.peerClose && !t.done && t.err == nil {
		t.end.recvEnded(t)
	}
}

func (t *tunnel) pause() {
	t.paused = true
	t.l.UnwatchReader(t.recv)
}

// resume reads the receive connection again once the relay took half the
// buffer.
func (t *tunnel) resume() {
	if t.recv == nil {
		return
	}
	t.compact()
	if t.paused && bufSize-t.inW >= bufSize/2 {
		t.paused = false
		t.l.WatchReader(t.recv)
		if s := t.recv; s.Transport() != nil {
			// TLS may hold plaintext already pulled from the fd, which
			// no event announces again. Posted: resume runs inside the
			// relay's Recv.
			t.l.Post(func() {
				if t.recv == s && !t.paused {
					poke(s, recvConn{t})
				}
			})
		}
	}
}

// closeRecv drops the receive connection.
func (t *tunnel) closeRecv() {
	if t.recv != nil {
		t.l.Close(t.recv)
		t.recv = nil
	}
}

// ---- the eventfd and the end ----

// sync makes the eventfd readable exactly while Recv has something to say:
// payload, unless the reader is direct (deliver hands it over, and a mux
// session leaves a frame cut at the end of the buffer where it is until
// the rest comes: raised, the eventfd would wake it for nothing), the end
// or a failure.
func (t *tunnel) sync() {
	if t.done {
		return
	}
	t.signal(!t.direct && t.inW > t.inR || t.err != nil || t.peerClose && !t.eofSeen)
}

// fail ends the tunnel on an error: one log line, then the relay learns it
// from Recv (or the connector that set the tunnel up, from failed).
func (t *tunnel) fail(err error) {
	if t.err != nil {
		return
	}
	t.err = err
	t.l.Logger().Error(fmt.Sprintf("httptunnel %s: %v", t.name, err))
	t.closeRecv()
	if t.send != nil {
		t.l.Close(t.send)
		t.send = nil
	}
	if t.done {
		t.shutdown()
		return
	}
	t.sync()
	t.end.closed(t)
	// The relay learns it from Recv; posted, since fail may run inside
	// one of the relay's own calls (Send).
	t.l.Post(func() {
		if !t.vs.Closed() {
			t.l.Notify(t.vs, true, false)
		}
	})
}

// shutdown releases everything the tunnel holds but vs, which the loop
// closes.
func (t *tunnel) shutdown() {
	if t.lingerT != nil {
		t.lingerT.Stop()
		t.lingerT = nil
	}
	t.closeRecv()
	if t.send != nil {
		t.l.Close(t.send)
		t.send = nil
	}
	if t.err == nil {
		t.err = errTunnelClosed
		t.end.closed(t)
	}
}

var errTunnelClosed = errors.New("tunnel closed")
