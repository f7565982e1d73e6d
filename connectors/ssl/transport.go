package ssl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"io"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// phase is where a TLS socket stands with respect to the relay.
type phase uint8

const (
	// handshaking: the connector's own handler drives the handshake.
	handshaking phase = iota
	// parked: the handshake is done and the socket waits, with no handler
	// and no interest, for the relay to take it (the in side waits for
	// its server to be reached).
	parked
	// relaying: the relay reads and writes through the transport.
	relaying
)

// conn is the loop.Transport (and loop.Flusher) of a TLS socket: the relay
// reads and writes plaintext through it, and it moves ciphertext between the
// socket's fd and the engine. The engine's news comes back through Post as
// a call to wake on the loop.
type conn struct {
	l     *loop.Loop
	s     *loop.Socket
	e     *tlsengine.Engine
	phase phase
	// done ends the handshake phase: err is nil on success.
	done func(err error)

	sockEOF    bool // the fd read EOF
	readPaused bool // reading the fd stopped because the engine was full
	recvDone   bool // Recv reported the end of the stream or a failure
	drained    bool // Recv's pull read the fd until EAGAIN
	reads      bool // Recv was called: the relay reads what it feeds
	wantShut   bool // the relay asked for CloseWrite
	shut       bool // shutdown(SHUT_WR) done
	logged     bool // the failure was logged
	// Bound once, so that passing them on allocates nothing.
	wakeFn func()
	readFn func(p []byte) (int, error)
}

// newConn puts s under TLS: the server side if server, else the client side.
// In the handshaking phase, done is called on the loop when the handshake
// ends; in the relaying phase (an upgrade), the relay sees the outcome.
func newConn(s *loop.Socket, cfg *tls.Config, server bool, opt tlsengine.Options, ph phase, done func(error)) *conn {
	c := &conn{l: s.Loop(), s: s, phase: ph, done: done}
	c.wakeFn, c.readFn = c.wake, c.readFd
	notify := func() { c.l.Post(c.wakeFn) }
	if server {
		c.e = tlsengine.NewServer(cfg, opt, notify)
	} else {
		c.e = tlsengine.NewClient(cfg, opt, notify)
	}
	s.SetTransport(c)
	if ph == handshaking {
		s.SetHandler(c)
		c.l.WatchReader(s)
	}
	return c
}

// wake runs on the loop when the engine has news. It must act on all of
// the snapshot it takes: taking one re-arms notify, so what it shows is not
// announced again.
func (c *conn) wake() {
	if c.s.Closed() {
		return
	}
	ev := c.e.Events()
	if c.readPaused && ev&tlsengine.CanFeed != 0 {
		c.readPaused = false
		c.l.WatchReader(c.s)
	}
	if c.phase == handshaking {
		c.handshakeStep(ev)
		if c.phase == handshaking || c.s.Closed() {
			return
		}
	}
	if c.phase == parked && c.s.Peer != nil {
		c.phase = relaying
	}
	if c.phase == parked {
		c.stash()
		return
	}
	// A socket that reported its end to the relay must not be called
	// readable again: the relay would take that for a reset.
	readable := ev&(tlsengine.PlainReady|tlsengine.Failed) != 0 && !c.recvDone
	writable := ev&(tlsengine.CipherReady|tlsengine.CanWrite|tlsengine.WriteShut|tlsengine.Failed) != 0
	c.l.Notify(c.s, readable, writable)
}

// RelayStarted implements loop.RelayStarter. Records that came with the
// handshake's last flight are decrypted while the socket is parked: stash
// hands their plaintext to the loop, but an end that followed it (the
// client's close_notify) stays in the engine, and the fd, drained during
// the handshake, will not call the relay for it: wake tells it.
func (c *conn) RelayStarted() {
	if c.e.More() {
		c.l.Post(c.wakeFn)
	}
}

// Readable pulls ciphertext during the handshake phase.
func (c *conn) Readable(*loop.Socket) {
	if err := c.pull(); err != nil {
		c.endHandshake(err)
	}
}

// Writable sends ciphertext during the handshake phase.
func (c *conn) Writable(*loop.Socket) { c.wake() }

func (c *conn) handshakeStep(ev tlsengine.Events) {
	err := c.Flush()
	switch {
	case ev&tlsengine.Failed != 0:
		c.endHandshake(c.e.Err())
	case err != nil && err != unix.EAGAIN:
		c.endHandshake(err)
	case ev&tlsengine.Handshaken != 0:
		// Ciphertext left over (session tickets) goes out when the
		// relay flushes the socket.
		c.endHandshake(nil)
	case err == unix.EAGAIN:
		c.l.WatchWriter(c.s)
	default:
		c.l.UnwatchWriter(c.s)
	}
}

// endHandshake parks the socket and reports the outcome. A failure is
// reported once, with whatever alert the engine made sent if the socket
// takes it.
func (c *conn) endHandshake(err error) {
	if c.phase != handshaking {
		return
	}
	c.phase = parked
	c.l.UnwatchReader(c.s)
	c.l.UnwatchWriter(c.s)
	c.s.SetHandler(nil)
	if err == nil {
		c.l.Logger().Debug("TLS handshake done", "socket", c.s.Nick(), "version", tls.VersionName(c.e.ConnectionState().Version))
	}
	c.done(err)
}

// stash hands plaintext decrypted while the socket is parked to the loop,
// which delivers stashed bytes first when the relay starts: the relay does
// not ask a transport for data it already holds. While parked the fd is not
// read, so this is bounded by what came with the handshake.
func (c *conn) stash() {
	var buf [4096]byte
	for {
		n, _ := c.e.Read(buf[:])
		if n == 0 {
			return
		}
		c.s.Stash(buf[:n])
	}
}

// pull moves ciphertext from the fd into the engine until the fd has none,
// the engine has no room (reading pauses until it has), or EOF.
func (c *conn) pull() error {
	for !c.sockEOF {
		n, err := c.e.FeedFrom(c.readFn)
		switch {
		case err == tlsengine.ErrQueueFull:
			c.readPaused = true
			c.l.UnwatchReader(c.s)
			return nil
		case err == unix.EAGAIN:
			c.drained = true
			return nil
		case err == unix.EINTR:
			return nil
		case err != nil:
			return err
		case n == 0:
			c.sockEOF = true
			c.e.FeedEOF()
			return nil
		}
	}
	return nil
}

func (c *conn) readFd(p []byte) (int, error) { return unix.Read(c.s.Fd(), p) }

// Recv implements loop.Transport: plaintext for the relay.
func (c *conn) Recv(p []byte) (int, error) {
	if !c.reads {
		// The relay reads what Recv feeds from now on: the engine may
		// decrypt on the loop (until now, records fed while the
		// connector settled the handshake were announced by wake).
		c.reads = true
		c.e.ReadAfterFeed()
	}
	c.phase = relaying
	// Only a relay that wants data gets the fd read: a call made because
	// wake reported plaintext while the relay holds back (its peer is
	// full) only empties what the engine already holds.
	c.drained = false
	if c.s.Reading() {
		if err := c.pull(); err != nil {
			return 0, c.failed(err)
		}
	}
	n, err := c.e.Read(p)
	switch {
	case n > 0 && (c.drained || !c.s.Reading()) && c.e.More():
		// The engine decrypts on the loop and holds more than p took
		// (plaintext, or the end that came after it), while the fd,
		// drained or not watched, will not call the relay back, and a
		// relay whose peer is full does not ask again: wake will
		// (PlainReady).
		c.l.Post(c.wakeFn)
		return n, nil
	case n > 0:
		return n, nil
	case err == io.EOF:
		c.recvDone = true
		return 0, nil
	case err != nil:
		c.recvDone = true
		return 0, c.failed(err)
	}
	return 0, unix.EAGAIN
}

// Send implements loop.Transport: plaintext to encrypt. Once the handshake
// is done the engine seals it at once, and Send writes the records to the
// fd before returning: the relay goes on reading only while nothing is
// left pending, so a stream costs one read, one write and no wake-up per
// chunk. Ciphertext still queued goes out first, to make room.
func (c *conn) Send(p []byte) (int, error) {
	c.phase = relaying
	if err := c.sendCipher(); err != nil && err != unix.EAGAIN {
		return 0, c.failed(err)
	}
	n, err := c.e.Write(p)
	switch {
	case err != nil:
		return 0, c.failed(err)
	case n == 0:
		// No room: the fd must take the queued records first (FdBlocked),
		// or the engine's goroutine notifies when it has room.
		return 0, unix.EAGAIN
	}
	switch err := c.sendCipher(); {
	case err == unix.EAGAIN:
		// The relay, whose chunk was taken whole, queues nothing and
		// watches nothing: the records left over wait for the fd.
		c.l.WatchWriter(c.s)
	case err != nil:
		return 0, c.failed(err)
	}
	return n, nil
}

// sendCipher writes the engine's ciphertext to the fd until it has none
// or the fd takes no more.
func (c *conn) sendCipher() error {
	for {
		b := c.e.Cipher()
		if len(b) == 0 {
			return nil
		}
		n, err := unix.Write(c.s.Fd(), b)
		if n > 0 {
			c.e.Sent(n)
		}
		if err != nil {
			return err
		}
	}
}

// Flush implements loop.Flusher: it writes the engine's ciphertext to the
// fd, then shuts the fd's write side once close_notify is out.
func (c *conn) Flush() error {
	if err := c.sendCipher(); err != nil {
		return err
	}
	fd := c.s.Fd()
	ev := c.e.Events()
	if c.wantShut && !c.shut && ev&tlsengine.WriteShut != 0 {
		c.shut = true
		unix.Shutdown(fd, unix.SHUT_WR)
	}
	if ev&tlsengine.Failed != 0 && c.phase == relaying {
		return c.failed(c.e.Err())
	}
	return nil
}

// Buffered implements loop.Flusher. Plaintext still to encrypt counts, so
// that the relay neither shuts nor closes the socket before it is sent.
func (c *conn) Buffered() int { return c.e.Buffered() }

// FdBlocked implements loop.Flusher: only ciphertext left over by Flush
// waits for the fd. Plaintext being encrypted does not: the engine notifies
// when its ciphertext is ready or its queue has room again (wake).
func (c *conn) FdBlocked() bool { return len(c.e.Cipher()) > 0 }

// CloseWrite implements loop.Transport: close_notify, then shutdown(SHUT_WR).
func (c *conn) CloseWrite() error {
	c.wantShut = true
	c.e.CloseWrite()
	if err := c.Flush(); err != nil && err != unix.EAGAIN {
		return err
	}
	return nil
}

// Close implements loop.Transport: the engine's goroutines end.
func (c *conn) Close() error {
	c.e.Close()
	return nil
}

// failed logs a session failure once, at error level since it ends a
// connection, and returns it for the relay.
func (c *conn) failed(err error) error {
	if !c.logged {
		c.logged = true
		c.l.Logger().Error(fmt.Sprintf("TLS with %s: %v", c.s.Nick(), err))
	}
	if errors.Is(err, unix.EAGAIN) {
		// The relay takes EAGAIN for "not now"; a failure must end it.
		return unix.EIO
	}
	return err
}
