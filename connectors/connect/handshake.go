package connect

import (
	"errors"
	"fmt"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// readSize is the most bytes read at once during the exchange. Reading
// past the headers is harmless: those bytes are stashed for the client.
const readSize = 4 << 10

// handshake is one CONNECT exchange in progress on the loop: the request
// is written as the socket takes it, the reply is parsed as it arrives,
// and one deadline counted from Open bounds it all (the Dial included).
type handshake struct {
	out    *Out
	l      *loop.Loop
	client *loop.Socket
	h      connectors.Handler
	req    []byte // request bytes not yet written
	target string // host:port asked for, for messages
	reply  *ReplyParser
	buf    []byte
	got    int // reply bytes read, for messages
}

// start runs once the web proxy accepted the connection, with what is
// left of the deadline.
func (hs *handshake) start(s *loop.Socket, left time.Duration) {
	if hs.client.Closed() {
		hs.fail(s, errClientLeft)
		return
	}
	hs.reply = NewReplyParser(hs.out.HeaderLimit)
	hs.buf = make([]byte, readSize)
	s.Connector = hs.out
	s.SetHandler(hs)
	s.SetTimer(left, func() { hs.fail(s, hs.expired()) })
	hs.Writable(s)
	if !s.Closed() {
		hs.l.WatchReader(s)
	}
}

var errClientLeft = errors.New("the client left before the tunnel was open")

// Writable sends what remains of the request.
func (hs *handshake) Writable(s *loop.Socket) {
	for len(hs.req) > 0 {
		n, err := s.Write(hs.req)
		if err == unix.EAGAIN {
			hs.l.WatchWriter(s)
			return
		}
		if err != nil {
			hs.fail(s, fmt.Errorf("sending the request: %w", err))
			return
		}
		hs.req = hs.req[n:]
	}
	hs.l.UnwatchWriter(s)
}

// Readable feeds the reply to the parser until it decides or the socket
// has nothing more for now.
func (hs *handshake) Readable(s *loop.Socket) {
	if hs.client.Closed() {
		hs.fail(s, errClientLeft)
		return
	}
	for {
		n, err := s.Read(hs.buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			hs.fail(s, fmt.Errorf("reading the reply: %w", err))
			return
		case n <= 0:
			hs.fail(s, hs.closedEarly())
			return
		}
		hs.got += n
		r := hs.reply.Feed(hs.buf[:n])
		switch r.Verdict {
		case Open:
			hs.open(s, hs.buf[r.Offset:n])
			return
		case Refused:
			hs.fail(s, fmt.Errorf("refused: %s", r.Status))
			return
		case Malformed:
			hs.fail(s, fmt.Errorf("malformed reply: %w", r.Err))
			return
		}
	}
}

// open ends the exchange: the socket becomes a plain server socket again
// (still Raw, so the relay may splice), and the bytes that came after the
// headers are stashed so that the client gets them first.
func (hs *handshake) open(s *loop.Socket, rest []byte) {
	s.StopTimer()
	hs.l.UnwatchReader(s)
	hs.l.UnwatchWriter(s)
	s.SetHandler(nil)
	s.Hook = hs.out.Hook
	if len(rest) > 0 {
		s.Stash(rest)
	}
	hs.h.Connected(hs.l, hs.client, s)
}

// fail closes the proxy socket (if any) and reports err with the target
// and the web proxy, in one line.
func (hs *handshake) fail(s *loop.Socket, err error) {
	if s != nil {
		hs.l.Close(s)
		if err != errClientLeft {
			connectors.HandshakeFailed(hs.h, connectors.HandshakeCONNECT)
		}
	}
	hs.h.Failed(hs.l, hs.client, fmt.Errorf("CONNECT %s through web proxy %s: %w", hs.target, hs.out.proxy.Addr(), err))
}

func (hs *handshake) expired() error {
	if hs.got == 0 {
		return fmt.Errorf("no reply within %v", hs.out.timeout())
	}
	return fmt.Errorf("reply incomplete after %v (%d bytes received)", hs.out.timeout(), hs.got)
}

func (hs *handshake) closedEarly() error {
	if hs.got == 0 {
		return errors.New("the web proxy closed the connection without replying")
	}
	return fmt.Errorf("the web proxy closed the connection in the middle of its reply (%d bytes received)", hs.got)
}
