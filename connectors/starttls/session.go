package starttls

import (
	"context"
	"fmt"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// session is a client's clear-text phase: the handler of its socket until
// it asks for TLS. It answers one command at a time and reads nothing while
// an answer is unwritten, so it holds at most one line and one answer.
type session struct {
	c        *In
	h        connectors.Handler
	line     lineBuf
	out      []byte  // the answer not yet written
	then     verdict // what follows once out is written
	commands int
	peek     [maxLine]byte
}

func startSession(c *In, h connectors.Handler, s *loop.Socket) {
	ss := &session{c: c, h: h}
	s.SetHandler(ss)
	s.SetTimer(c.timeout(), func() { ss.expire(s) })
	ss.answer(s, c.d.greeting(), carryOn)
}

// Readable reads command lines. The socket is peeked first, so that no
// byte past a line's end leaves it: after STARTTLS, those bytes are TLS.
func (ss *session) Readable(s *loop.Socket) {
	for {
		n, _, err := unix.Recvfrom(s.Fd(), ss.peek[:ss.line.room()], unix.MSG_PEEK)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return
		case err != nil:
			ss.fail(s, fmt.Errorf("read: %w", err))
			return
		case n == 0:
			s.Loop().Logger().Log(context.Background(), loop.LevelInfo, fmt.Sprintf("starttls in: client %s left before STARTTLS", s.Nick()))
			s.Loop().Close(s)
			return
		}
		n, err = unix.Read(s.Fd(), ss.peek[:lineEnd(ss.peek[:n])])
		if err != nil {
			ss.fail(s, fmt.Errorf("read: %w", err))
			return
		}
		line, err := ss.line.add(ss.peek[:n])
		if err != nil {
			ss.report(s, err)
			ss.answer(s, ss.c.d.tooLong, quit)
			return
		}
		if line != nil && !ss.command(s, line) {
			return
		}
	}
}

// command answers one line; it reports whether the next can be read now.
func (ss *session) command(s *loop.Socket, line []byte) bool {
	ss.commands++
	reply, v := ss.c.d.answer(line)
	switch {
	case v != upgrade && ss.commands > maxCommands:
		ss.report(s, fmt.Errorf("%d commands without STARTTLS, closing", maxCommands))
		reply, v = ss.c.d.tooMany, quit
	case v == quit:
		s.Loop().Logger().Log(context.Background(), loop.LevelInfo, fmt.Sprintf("starttls in: client %s quit before STARTTLS", s.Nick()))
	}
	ss.answer(s, reply, v)
	return v == carryOn && len(ss.out) == 0 && !s.Closed()
}

// Writable writes the rest of an answer.
func (ss *session) Writable(s *loop.Socket) { ss.flush(s) }

func (ss *session) answer(s *loop.Socket, reply string, then verdict) {
	ss.out = append(ss.out, reply...)
	ss.then = then
	ss.flush(s)
}

// flush writes the answer, then does what follows it: read the next
// command, start TLS, or close.
func (ss *session) flush(s *loop.Socket) {
	l := s.Loop()
	for len(ss.out) > 0 {
		n, err := s.Write(ss.out)
		if n > 0 {
			ss.out = ss.out[n:]
		}
		switch {
		case err == unix.EAGAIN:
			l.UnwatchReader(s)
			l.WatchWriter(s)
			return
		case err != nil && err != unix.EINTR:
			ss.fail(s, fmt.Errorf("write: %w", err))
			return
		}
	}
	ss.out = nil
	l.UnwatchWriter(s)
	switch ss.then {
	case carryOn:
		l.WatchReader(s)
	case quit:
		ss.drain(s)
		l.Close(s)
	case upgrade:
		s.StopTimer()
		l.UnwatchReader(s)
		s.SetHandler(nil)
		ss.c.secure(l, ss.h, s)
	}
}

// expire ends a clear-text phase that outlived the deadline, with the
// protocol's closing line if the socket takes it at once.
func (ss *session) expire(s *loop.Socket) {
	s.Loop().Logger().Error(fmt.Sprintf("starttls in: client %s: no STARTTLS within %v, closing", s.Nick(), ss.c.timeout()))
	if len(ss.out) == 0 {
		s.Write([]byte(ss.c.d.timedOut))
	}
	s.Loop().Close(s)
}

// fail logs bad input or a broken socket and closes the client.
func (ss *session) fail(s *loop.Socket, err error) {
	ss.report(s, err)
	s.Loop().Close(s)
}

func (ss *session) report(s *loop.Socket, err error) {
	s.Loop().Logger().Error(fmt.Sprintf("starttls in: client %s: %v", s.Nick(), err))
}

// drain reads (a bounded amount of) what the client sent after its last
// command: closing a socket with unread data resets the connection, and the
// reset could destroy the closing line on its way.
func (ss *session) drain(s *loop.Socket) {
	for range 4 {
		if n, _ := unix.Read(s.Fd(), ss.peek[:]); n <= 0 {
			return
		}
	}
}
