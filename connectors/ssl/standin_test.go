package ssl

import (
	"errors"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// standIn is a tiny single-threaded loop for the tests: poll(2) on one
// non-blocking socket and an eventfd that the engine's notify writes to. It
// moves ciphertext between the socket and the engine, and plaintext between
// the engine and an app, the way the real loop's relay does.
type standIn struct {
	t    *testing.T
	fd   int
	wake int
	e    *tlsengine.Engine
	app  *app

	feedLeft  []byte // ciphertext read from the socket that Feed refused
	sockEOF   bool
	shut      bool
	feedStops int // how often Feed refused bytes: backpressure happened
}

// app is the plaintext side: it sends out, then closes its write side if
// closeAfter; it collects what it reads in got, or echoes it if echo.
type app struct {
	out        []byte
	closeAfter bool
	echo       bool
	maxGot     int // stop reading plaintext beyond this many bytes (0: no limit)
	wantGot    int // done once this many bytes came (0: done at EOF)
	waitEOF    bool
	got        []byte
	gotEOF     bool
	closed     bool // CloseWrite was called
}

// result is how a stand-in run ended.
type result struct {
	err     error // the engine's failure, if any
	timeout bool
	app     *app
	state   tlsengine.Events
	stops   int
	version uint16 // the negotiated protocol version, if the handshake completed
}

// socketFD returns a non-blocking descriptor of its own for c, and closes c.
func socketFD(t *testing.T, c net.Conn) int {
	t.Helper()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return fd
}

// runStandIn drives e over c until the app is done, the engine fails, or
// the time limit passes; it closes the socket and the engine before it
// returns.
func runStandIn(t *testing.T, c net.Conn, mk func(notify func()) *tlsengine.Engine, a *app, limit time.Duration) result {
	t.Helper()
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{t: t, fd: socketFD(t, c), wake: wake, app: a}
	s.e = mk(s.notify)
	defer func() {
		s.e.Close()
		unix.Close(s.fd)
		unix.Close(s.wake)
	}()
	deadline := time.Now().Add(limit)
	for {
		ev := s.e.Events()
		if ev&tlsengine.Failed != 0 {
			s.flush()
			return s.result(ev, false)
		}
		s.step()
		if s.done() {
			return s.result(s.e.Events(), false)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return s.result(ev, true)
		}
		s.poll(left)
	}
}

func (s *standIn) result(ev tlsengine.Events, timeout bool) result {
	r := result{err: s.e.Err(), timeout: timeout, app: s.app, state: ev, stops: s.feedStops}
	if ev&tlsengine.Handshaken != 0 {
		r.version = s.e.ConnectionState().Version
	}
	return r
}

func (s *standIn) notify() {
	var one = [8]byte{1}
	unix.Write(s.wake, one[:])
}

func (s *standIn) done() bool {
	a := s.app
	switch {
	case len(a.out) > 0, a.closeAfter && !s.shut, a.waitEOF && !a.gotEOF:
		return false
	case a.wantGot > 0:
		return len(a.got) >= a.wantGot
	}
	return a.gotEOF
}

// step does everything that can be done without waiting.
func (s *standIn) step() {
	s.readSocket()
	s.readPlain()
	s.writePlain()
	s.flush()
	if s.e.Events()&tlsengine.WriteShut != 0 && !s.shut {
		s.shut = true
		unix.Shutdown(s.fd, unix.SHUT_WR)
	}
}

func (s *standIn) readSocket() {
	buf := make([]byte, 4096)
	for !s.sockEOF {
		if len(s.feedLeft) > 0 {
			n := s.e.Feed(s.feedLeft)
			s.feedLeft = s.feedLeft[n:]
			if len(s.feedLeft) > 0 {
				s.feedStops++
				return
			}
		}
		n, err := unix.Read(s.fd, buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil || n == 0:
			s.sockEOF = true
			s.e.FeedEOF()
			return
		}
		s.feedLeft = append(s.feedLeft[:0], buf[:n]...)
	}
}

func (s *standIn) readPlain() {
	a := s.app
	buf := make([]byte, 4096)
	for !a.gotEOF && (a.maxGot == 0 || len(a.got) < a.maxGot) && len(a.out) < 1<<16 {
		n, err := s.e.Read(buf)
		a.got = append(a.got, buf[:n]...)
		if a.echo {
			a.out = append(a.out, buf[:n]...)
		}
		if err == io.EOF {
			a.gotEOF = true
			a.closeAfter = a.closeAfter || a.echo
		}
		if n == 0 || err != nil {
			return
		}
	}
}

func (s *standIn) writePlain() {
	a := s.app
	for len(a.out) > 0 {
		n, err := s.e.Write(a.out)
		a.out = a.out[n:]
		if n == 0 || err != nil {
			return
		}
	}
	if a.closeAfter && !a.closed && (a.gotEOF || !a.echo) && len(a.got) >= a.wantGot {
		a.closed = true
		s.e.CloseWrite()
	}
}

// flush writes what ciphertext the socket takes.
func (s *standIn) flush() {
	for {
		c := s.e.Cipher()
		if len(c) == 0 {
			return
		}
		n, err := unix.Write(s.fd, c)
		if err != nil {
			return
		}
		s.e.Sent(n)
	}
}

func (s *standIn) poll(left time.Duration) {
	ms := int(left / time.Millisecond)
	if ms > 100 {
		ms = 100
	}
	fds := []unix.PollFd{{Fd: int32(s.wake), Events: unix.POLLIN}, {Fd: int32(s.fd)}}
	if !s.sockEOF && len(s.feedLeft) == 0 {
		fds[1].Events |= unix.POLLIN
	}
	if len(s.e.Cipher()) > 0 {
		fds[1].Events |= unix.POLLOUT
	}
	if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
		s.t.Fatal(err)
	}
	var b [8]byte
	unix.Read(s.wake, b[:])
}
