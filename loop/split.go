package loop

import "golang.org/x/sys/unix"

// A split socket is one connection made of two fds: one read, one written,
// such as a process's standard input and output. The relay treats it as any
// socket; only the poller sees two fds. Each fd is in the epoll set only
// while its direction is watched, because a pipe whose other end is gone
// reports EPOLLHUP or EPOLLERR whatever the interest, on every pass. An fd
// that epoll refuses (a regular file, /dev/null: EPERM) is always ready:
// the loop serves it on every pass while its direction is watched, without
// sleeping.
type split struct {
	r, w fdWatch
}

// fdWatch is one fd of a split socket as the poller knows it.
type fdWatch struct {
	pipe       bool // a pipe: splice needs no other
	watched    bool // in the epoll set
	unpollable bool // epoll refused it: served on every pass instead
	closed     bool // the write fd, closed by a shutdown
}

// AdoptSplit makes one socket that reads from r and writes to w, both
// non-blocking, as Adopt does for one fd. The loop owns both fds from now
// on: w is closed on shutdown (a pipe's EOF), both on close. The socket is
// not Raw; set it when both fds can splice (pipes or sockets).
func (l *Loop) AdoptSplit(r, w int, h Handler) (*Socket, error) {
	s, err := l.Adopt(r, h)
	if err != nil {
		return nil, err
	}
	s.wfd = w
	sp := &split{}
	sp.r.pipe, sp.w.pipe = isPipe(r), isPipe(w)
	s.extra().split = sp
	for w >= len(l.sockets) {
		l.sockets = append(l.sockets, make([]*Socket, len(l.sockets)+64)...)
	}
	l.sockets[w] = s
	return s, nil
}

// route turns an event of one of the two fds into the socket's event: the
// read fd only reads, the write fd only writes, and an error on the write
// fd (its reader gone) is for the writer to find.
func (sp *split) route(s *Socket, ev event) event {
	if ev.fd == s.fd {
		ev.writable = false
		return ev
	}
	ev.readable = false
	ev.writable = ev.writable || ev.hangup
	ev.hangup = false
	return ev
}

// syncSplit makes the epoll set agree with the watch lists, fd by fd.
func (l *Loop) syncSplit(s *Socket) {
	sp := s.splitState()
	l.syncFd(s, s.fd, &sp.r, s.interest&watchRead)
	if !sp.w.closed {
		l.syncFd(s, s.wfd, &sp.w, s.interest&watchWrite)
	}
	s.mask = s.interest
}

func (l *Loop) syncFd(s *Socket, fd int, fw *fdWatch, want uint8) {
	switch {
	case fw.unpollable || fw.watched == (want != 0):
		return
	case want == 0:
		l.poll.remove(fd)
		fw.watched = false
		return
	}
	err := l.poll.add(fd, want)
	switch err {
	case nil:
		fw.watched = true
	case unix.EPERM:
		if sp := s.splitState(); !sp.r.unpollable && !sp.w.unpollable {
			l.unpollable = append(l.unpollable, s)
		}
		fw.unpollable = true
	default:
		l.log.Error("epoll_ctl failed", "socket", s.Nick(), "err", err)
	}
}

// closeWriteFd closes a split socket's write fd now (its reader sees EOF);
// the read fd stays open.
func (l *Loop) closeWriteFd(s *Socket) {
	sp := s.splitState()
	if sp.w.closed {
		return
	}
	sp.w.closed = true
	if sp.w.watched {
		l.poll.remove(s.wfd)
	}
	l.sockets[s.wfd] = nil
	l.closing = append(l.closing, s.wfd)
}

// detachSplit takes a split socket's fds out of the poller.
func (l *Loop) detachSplit(s *Socket) {
	sp := s.splitState()
	if sp.r.watched {
		l.poll.remove(s.fd)
	}
	if sp.w.watched && !sp.w.closed {
		l.poll.remove(s.wfd)
	}
	sp.r.watched, sp.w.watched = false, false
	sp.r.unpollable, sp.w.unpollable = false, false
}

// waitMs is how long the poller may sleep: not at all while an unpollable
// fd is ready for its watched direction.
func (l *Loop) waitMs() int {
	for _, s := range l.unpollable {
		if l.unpollableReady(s) != (event{}) {
			return 0
		}
	}
	return l.timers.waitMs()
}

// unpollableReady is the event an unpollable split socket has now: ready in
// every direction it watches.
func (l *Loop) unpollableReady(s *Socket) event {
	if s.closed || s.detached || s.handler == nil {
		return event{}
	}
	sp := s.splitState()
	return event{
		fd:       s.fd,
		readable: sp.r.unpollable && s.interest&watchRead != 0,
		writable: sp.w.unpollable && !sp.w.closed && s.interest&watchWrite != 0,
	}
}

// dispatchUnpollable serves the unpollable split sockets, and forgets those
// that are closed. A handler may add one meanwhile: it waits for the next pass.
func (l *Loop) dispatchUnpollable() {
	for _, s := range l.unpollable[:len(l.unpollable):len(l.unpollable)] {
		ev := l.unpollableReady(s)
		if ev.readable {
			s.handler.Readable(s)
		}
		if ev.writable && !s.closed {
			s.handler.Writable(s)
		}
	}
	live := l.unpollable[:0]
	for _, s := range l.unpollable {
		if !s.closed && !s.detached {
			live = append(live, s)
		}
	}
	clear(l.unpollable[len(live):])
	l.unpollable = live
}
