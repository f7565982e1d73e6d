package loop

import (
	"golang.org/x/sys/unix"
)

// Watch lists. Net::Proxy keeps three lists (listeners, readers, writers);
// here each is a bit of the socket's interest, and changing it costs one
// epoll_ctl only when the bit really changes.

// WatchReader adds s to the readers list (listeners are readers too).
func (l *Loop) WatchReader(s *Socket) { l.setInterest(s, s.interest|watchRead) }

// UnwatchReader removes s from the readers list.
func (l *Loop) UnwatchReader(s *Socket) { l.setInterest(s, s.interest&^watchRead) }

// WatchWriter adds s to the writers list.
func (l *Loop) WatchWriter(s *Socket) { l.setInterest(s, s.interest|watchWrite) }

// UnwatchWriter removes s from the writers list.
func (l *Loop) UnwatchWriter(s *Socket) { l.setInterest(s, s.interest&^watchWrite) }

// Reading reports whether s is in the readers list.
func (s *Socket) Reading() bool { return s.interest&watchRead != 0 }

// Writing reports whether s is in the writers list.
func (s *Socket) Writing() bool { return s.interest&watchWrite != 0 }

func (l *Loop) setInterest(s *Socket, interest uint8) {
	s.interest = interest
	l.syncInterest(s)
}

// syncInterest makes the epoll set agree with the watch lists, with an
// epoll_ctl only when they differ.
func (l *Loop) syncInterest(s *Socket) {
	if s.closed || s.detached || s.interest == s.mask && s.registered {
		return
	}
	if s.splitState() != nil {
		l.syncSplit(s)
		return
	}
	var err error
	if s.registered {
		err = l.poll.modify(s.fd, s.interest)
	} else if s.interest != 0 {
		err = l.poll.add(s.fd, s.interest)
	} else {
		return
	}
	if err != nil {
		l.log.Error("epoll_ctl failed", "socket", s.Nick(), "err", err)
		return
	}
	s.registered = true
	s.mask = s.interest
}

// Adopt makes a socket of fd, which must be non-blocking, with an empty
// interest. The loop owns fd from now on and closes it with the socket. The
// fd joins the epoll set when it is first watched: a client parked while its
// server is reached costs no epoll_ctl, and is noticed gone when the relay
// starts.
func (l *Loop) Adopt(fd int, h Handler) (*Socket, error) {
	s := &Socket{fd: fd, wfd: fd, loop: l, handler: h, born: l.now()}
	for fd >= len(l.sockets) {
		l.sockets = append(l.sockets, make([]*Socket, len(l.sockets)+64)...)
	}
	l.sockets[fd] = s
	return s, nil
}

func (l *Loop) socket(fd int) *Socket {
	if fd < len(l.sockets) {
		return l.sockets[fd]
	}
	return nil
}

// detach takes s out of the poller for good while keeping it open.
func (l *Loop) detach(s *Socket) {
	if !s.detached && !s.closed {
		if s.splitState() != nil {
			l.detachSplit(s)
		}
		if s.registered {
			l.poll.remove(s.fd)
		}
		s.detached = true
		s.interest, s.mask = 0, 0
	}
}

// Close closes s now, dropping anything still pending for it; closing a
// closed socket does nothing (Net::Proxy 0.13's third close race). The fd is
// released at the end of the loop pass, so that an event later in the same
// batch cannot reach a new socket that reused the number.
func (l *Loop) Close(s *Socket) {
	if s.closed {
		return
	}
	l.forgetIfShared(s)
	s.closed = true
	if l.noticing() {
		l.notice("Closing " + s.logName())
	}
	s.StopTimer()
	if s.gate != nil {
		// Uncounted once its fd is released (releaseClosed): a slot freed
		// now and taken by an accept in this pass would hold fds beyond
		// maxconn, which is sized to meet the fd limit before EMFILE.
		l.leaving = append(l.leaving, s)
	}
	// No EPOLL_CTL_DEL: closing the fd (at the end of this pass, before the
	// next epoll_wait) removes it from the set, and events already
	// collected for it find no socket.
	if s.fd >= 0 { // a Virtual socket has no fd
		l.sockets[s.fd] = nil
		l.closing = append(l.closing, s.fd)
	}
	if s.splitState() != nil {
		l.closeWriteFd(s)
	}
	if s.pipe != nil {
		l.pipes.Put(s.pipe) // it holds data no one will read: Put closes it
		s.pipe = nil
	}
	s.out.Reset(l.rings)
	if s.ext != nil {
		s.ext.early.Reset(l.rings)
	}
	if s.transport != nil {
		s.transport.Close()
	}
	if s.Peer != nil && s.Peer.Peer == s {
		s.Peer.Peer = nil
	}
	if s.Closer != nil {
		s.Closer.SocketClosed(s)
	}
}

// Abort closes s with a reset (SO_LINGER 0) rather than a FIN, so that the
// remote end learns the connection failed.
func (l *Loop) Abort(s *Socket) {
	if !s.closed {
		unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	l.Close(s)
}

func (l *Loop) releaseClosed() {
	for _, fd := range l.closing {
		unix.Close(fd)
	}
	l.closing = l.closing[:0]
	for i, s := range l.leaving {
		g := s.gate
		s.gate = nil
		g.leave(s)
		l.leaving[i] = nil
	}
	l.leaving = l.leaving[:0]
}
