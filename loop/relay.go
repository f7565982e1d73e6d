package loop

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"
)

// relay is the handler of joined sockets. It is stateless: all state lives in
// the two sockets, so one value serves every pair.
type relay struct{}

// readRounds bounds how many chunks one readiness event moves: enough to keep
// a fast stream from paying an epoll_wait per chunk, few enough that other
// sockets get their turn.
const readRounds = 4

// Relay joins client and server, two connected sockets of this loop, and
// moves bytes between them until both directions are done: splice(2) when
// both are Raw, the reading side has no hook and its reads show a stream
// (see copySmall), buffers otherwise. Stashed bytes are delivered first,
// and transports that may hold more are told the relay started
// (RelayStarter). EOF on one side becomes shutdown(SHUT_WR) on the other
// once its pending data is written; the pair closes when both directions
// are done; an error on one side closes the other once its pending data is
// written.
//
// Datagram sockets (see SetDatagram) are relayed one datagram at a time
// instead.
func (l *Loop) Relay(client, server *Socket) {
	if client.dgram != nil || server.dgram != nil {
		l.relayDatagrams(client, server)
		return
	}
	client.Peer, server.Peer = server, client
	for _, s := range [2]*Socket{client, server} {
		s.handler = relay{}
		s.lastRead = l.now()
		if s.ext != nil {
			countCopied(s, s.Peer, s.ext.early.Len())
			s.ext.early.MoveTo(&s.Peer.out)
		}
	}
	for _, s := range [2]*Socket{client, server} {
		if !s.closed {
			l.setInterest(s, watchRead) // writing is watched only while data is pending
			l.flush(s)
		}
	}
	startTransports([2]*Socket{client, server})
}

func (relay) Readable(s *Socket) {
	l := s.loop
	if s.readDone {
		// A transport's wake-ups (Notify) may come after its EOF, and mean
		// nothing then. Otherwise only a hang-up reaches a socket that read
		// EOF already: with its write side still open that is a reset, and
		// if not, nothing is left to hear from it.
		if s.transport != nil && !l.hangup {
			return
		}
		if s.writeDone {
			l.detach(s)
		} else {
			l.fail(s, unix.ECONNRESET)
		}
		return
	}
	s.lastRead = l.passStart // a store per event, for IdleTimeout
	peer := s.Peer
	if peer == nil || peer.closed || peer.writeDone || peer.closePending {
		// Nowhere for the data to go: the other side is gone.
		l.finishRead(s)
		return
	}
	for i := 0; i < readRounds; i++ {
		n, full, err := l.transfer(s, peer)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.fail(s, err)
			return
		case n == 0:
			l.finishRead(s)
			return
		}
		if s.closed || peer.closed || peer.Pending() > 0 {
			// The peer could not take it all: its Writable continues.
			return
		}
		if !full && s.transport == nil {
			// A short read drained the socket: asking again would only
			// cost an EAGAIN. (A transport may hand out less than it
			// holds, so it is always asked again.)
			return
		}
	}
}

func (relay) Writable(s *Socket) { s.loop.flush(s) }

// transfer moves one chunk from src towards dst and tries to write it; 0
// with no error is EOF, and full says the chunk filled what was asked, so
// more may be waiting.
func (l *Loop) transfer(src, dst *Socket) (n int, full bool, err error) {
	switch {
	case !l.canSplice(src, dst):
		return l.copyChunk(src, dst, l.scratch)
	case splicesDirect(src, dst):
		return l.spliceDirect(src, dst)
	case !src.streaming:
		return l.copySmall(src, dst)
	}
	return l.spliceIn(src, dst)
}

// copyChunk moves one chunk from src to dst through buf, in user space,
// where the hook sees it.
func (l *Loop) copyChunk(src, dst *Socket, buf []byte) (n int, full bool, err error) {
	n, err = src.Read(buf)
	if err != nil || n <= 0 {
		return 0, false, err
	}
	data := buf[:n]
	if src.Hook != nil {
		data = src.Hook(data, src)
	}
	l.stats.Copied.Add(uint64(len(data)))
	countCopied(src, dst, len(data))
	l.send(dst, data)
	return n, n == len(buf), nil
}

// send writes data to dst directly when nothing is queued before it, and
// queues the rest: a ring is taken only while a peer is slower than its
// source.
func (l *Loop) send(dst *Socket, data []byte) {
	if dst.Pending() == 0 {
		n, err := dst.Write(data)
		if err != nil && err != unix.EAGAIN {
			l.fail(dst, err)
			return
		}
		if n > 0 {
			data = data[n:]
		}
	}
	if len(data) > 0 {
		dst.out.Push(l.rings, data)
		l.afterWrite(dst)
	}
}

// flush writes what is pending for s: spliced bytes first, since they were
// read first, then the buffer.
func (l *Loop) flush(s *Socket) {
	if s.pipe != nil && !l.spliceOut(s) {
		l.afterWrite(s)
		return
	}
	for s.out.Len() > 0 {
		n, err := s.Write(s.out.Peek())
		if n > 0 {
			s.out.Discard(l.rings, n)
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.fail(s, err)
			return
		}
	}
	if f, ok := s.transport.(Flusher); ok && f.Buffered() > 0 {
		if err := f.Flush(); err != nil && err != unix.EAGAIN {
			l.fail(s, err)
			return
		}
	}
	l.afterWrite(s)
}

// afterWrite settles s after a write: watch for writability while data is
// pending, apply backpressure to the source, and finish a pending shutdown
// or close once drained.
func (l *Loop) afterWrite(s *Socket) {
	if s.closed {
		return
	}
	pending := s.Pending()
	src := s.Peer
	if pending > 0 {
		if waitsForFd(s) {
			l.WatchWriter(s)
		} else {
			l.UnwatchWriter(s)
		}
		// Backpressure: the source waits until s drains. A pipe that could
		// not be emptied also stops it, since splicing into a full pipe
		// would fail the same way as reading an empty socket.
		if src != nil && (s.pipe != nil || l.cfg.BufferSize > 0 && pending >= l.cfg.BufferSize) {
			l.UnwatchReader(src)
		}
		return
	}
	l.UnwatchWriter(s)
	switch {
	case s.closePending:
		l.Close(s)
	case s.shutPending:
		l.shutdownWrite(s)
	case src != nil && !src.readDone && !src.closed:
		l.WatchReader(src)
	}
}

// waitsForFd reports whether what is pending for s can move only once its
// fd is writable. A flushing transport knows better: it may be waiting for
// its own work, and then it wakes the socket itself.
func waitsForFd(s *Socket) bool {
	f, ok := s.transport.(Flusher)
	return !ok || f.FdBlocked()
}

// finishRead handles EOF on s: the peer is shut down for writing once its
// pending data is written.
func (l *Loop) finishRead(s *Socket) {
	s.readDone = true
	peer := s.Peer
	switch {
	case peer == nil || peer.closed:
		l.Close(s)
		return
	case peer.readDone && s.writeDone && peer.Pending() == 0 && peer.transport == nil:
		// This EOF ends the pair: close sends the FIN that a shutdown
		// would, and saves it and an epoll_ctl. (A transport's CloseWrite
		// has more to say, such as TLS's close_notify.)
		s.SetEnd(EndEOF)
		peer.SetEnd(EndEOF)
		l.Close(s)
		l.Close(peer)
		return
	}
	l.UnwatchReader(s)
	switch {
	case peer.Pending() > 0:
		peer.shutPending = true
	default:
		l.shutdownWrite(peer)
	}
	l.settle(s)
}

func (l *Loop) shutdownWrite(s *Socket) {
	s.shutPending = false
	if s.writeDone {
		return
	}
	s.writeDone = true
	switch {
	case s.transport != nil:
		s.transport.CloseWrite()
	case s.splitState() != nil:
		l.closeWriteFd(s) // a pipe has no shutdown: closing it is its EOF
	default:
		unix.Shutdown(s.fd, unix.SHUT_WR)
	}
	l.settle(s)
}

// settle closes the pair once both directions are over (each side has read
// EOF and been shut down for writing). A socket done both ways while its
// peer still drains leaves the poller: its level-triggered hang-up would
// otherwise be reported on every pass.
func (l *Loop) settle(s *Socket) {
	if s.closed || !s.readDone || !s.writeDone {
		return
	}
	p := s.Peer
	if p == nil || p.closed || p.readDone && p.writeDone {
		s.SetEnd(EndEOF)
		l.Close(s)
		if p != nil {
			p.SetEnd(EndEOF)
			l.Close(p)
		}
		return
	}
	l.detach(s)
}

// fail handles a read or write error on s (a reset, a broken pipe): s is
// closed at once and its peer is closed after its pending data is written,
// with a reset if nothing was pending, so that the error reaches the other
// end as an error rather than as a clean EOF.
func (l *Loop) fail(s *Socket, err error) {
	if l.log.Enabled(context.Background(), LevelDebug) {
		// Built only when logged: naming a reset socket costs a failing
		// getpeername (ENOTCONN) and a string, per reset.
		Log(l.log, LevelDebug, "relay error", slog.String("socket", s.Nick()), slog.Any("err", err))
	}
	peer := s.Peer
	s.SetEnd(EndReset)
	l.Close(s)
	if peer == nil || peer.closed {
		return
	}
	peer.SetEnd(EndPeerReset)
	if peer.Pending() > 0 {
		l.UnwatchReader(peer)
		peer.closePending = true
		return
	}
	l.Abort(peer) // closing takes it out of the epoll set: no epoll_ctl
}
