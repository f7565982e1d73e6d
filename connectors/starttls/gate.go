package starttls

import (
	"errors"
	"fmt"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// tlsTransport is what ssl.Handshake leaves on a socket: a transport that
// holds output of its own.
type tlsTransport interface {
	loop.Transport
	loop.Flusher
}

// maxHeld bounds the plaintext held back before the server greeted: only
// what came with the handshake, since the socket is not read meanwhile.
const maxHeld = 64 << 10

// gate is the client's transport once TLS is up. It wraps the TLS session,
// drops the server's greeting on its way to the client, and until then
// holds the client's plaintext back: the relay is not given it, and what the
// TLS session decrypted before the relay started (which the socket's hook
// sees first) is kept aside.
type gate struct {
	tlsTransport
	c    *In
	s    *loop.Socket
	g    greeting
	open bool   // the greeting went by
	held []byte // the client's plaintext, kept until open
	err  error  // the greeting's failure, reported once
}

// newGate puts the client's TLS transport behind a gate and arms the
// deadline of the server's greeting.
func newGate(c *In, s *loop.Socket) error {
	t, ok := s.Transport().(tlsTransport)
	if !ok {
		return errors.New("the TLS session lacks a flushing transport")
	}
	g := &gate{tlsTransport: t, c: c, s: s, g: greeting{d: c.d}}
	s.SetTransport(g)
	s.Hook = g.hold
	s.SetTimer(c.timeout(), func() { g.fail(errNoGreeting) })
	return nil
}

// hold is the socket's hook until the server greeted: the only data it can
// see then is what the TLS session stashes before the relay starts.
func (g *gate) hold(data []byte, _ *loop.Socket) []byte {
	if len(g.held)+len(data) > maxHeld {
		g.fail(fmt.Errorf("more than %d bytes from the client before the server greeted", maxHeld))
		return nil
	}
	g.held = append(g.held, data...)
	return nil
}

// Recv implements loop.Transport: nothing until the server greeted, then
// the held plaintext, then the session's.
func (g *gate) Recv(p []byte) (int, error) {
	switch {
	case g.err != nil:
		return 0, unix.EIO
	case !g.open:
		// The relay watches the client again whenever the server drains;
		// each time it is taken out. A hang-up is reported whatever the
		// interest, so it must end the connection here, or repeat.
		g.s.Loop().UnwatchReader(g.s)
		if hungUp(g.s.Fd()) {
			return 0, unix.ECONNRESET
		}
		return 0, unix.EAGAIN
	case len(g.held) > 0:
		n := copy(p, g.held)
		g.held = g.held[n:]
		return n, nil
	}
	return g.tlsTransport.Recv(p)
}

// Send implements loop.Transport: the server's greeting is dropped, the
// rest is encrypted for the client.
func (g *gate) Send(p []byte) (int, error) {
	if g.err != nil {
		return 0, unix.EIO
	}
	if g.open {
		return g.tlsTransport.Send(p)
	}
	n, done, err := g.g.take(p)
	if err != nil {
		g.fail(err)
		return 0, unix.EIO
	}
	if !done {
		return n, nil
	}
	g.release()
	if n == len(p) {
		return n, nil
	}
	m, err := g.tlsTransport.Send(p[n:])
	if err == unix.EAGAIN {
		// The greeting was taken: that is progress, the rest waits.
		return n, nil
	}
	return n + m, err
}

// CloseWrite implements loop.Transport: the server's end reaches the
// client as usual, and an end before the greeting is worth a log line.
func (g *gate) CloseWrite() error {
	if !g.open && g.err == nil {
		g.s.StopTimer()
		g.s.Loop().Logger().Error(fmt.Sprintf("starttls in: client %s: the server closed before its greeting ended", g.s.Nick()))
	}
	return g.tlsTransport.CloseWrite()
}

// release lets the client's plaintext go once the server greeted. The
// relay is told later, from the loop's queue: Send runs inside the relay's
// handling of the server.
func (g *gate) release() {
	g.open = true
	g.s.StopTimer()
	g.s.Hook = g.c.Hook // the relay shows it the held bytes too
	l, s := g.s.Loop(), g.s
	l.Post(func() {
		if !s.Closed() {
			l.WatchReader(s)
			l.Notify(s, true, false)
		}
	})
}

// fail logs why the connection ends, and closes it.
func (g *gate) fail(err error) {
	if g.err != nil {
		return
	}
	g.err = err
	l, s := g.s.Loop(), g.s
	l.Logger().Error(fmt.Sprintf("starttls in: client %s: %v", s.Nick(), err))
	peer := s.Peer
	l.Close(s)
	if peer != nil {
		l.Close(peer)
	}
}

// hungUp reports whether the peer of fd is gone (POLLHUP or POLLERR).
func hungUp(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
}
