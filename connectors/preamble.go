package connectors

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Preamble runs an exchange on a socket before the relay (a SOCKS5
// negotiation, a CONNECT request, an upstream proxy's reply), on the loop,
// bounded in bytes and in time, then hands the socket over with no handler
// and no interest, the bytes read past the exchange stashed for the relay.
// One value serves every socket.
type Preamble struct {
	// Limit bounds the bytes read and not yet consumed by Step.
	Limit int
	// Timeout bounds the whole exchange, however the bytes trickle in.
	Timeout time.Duration
	// Step sees the bytes read and not consumed yet, and says how many it
	// consumed (0: it needs more), whether the exchange is over, or why it
	// fails. It may write short answers to s (see WriteAll).
	Step func(s *loop.Socket, data []byte) (n int, done bool, err error)
	// Done runs when the exchange is over; s has no handler nor interest,
	// unless Hold.
	Done func(s *loop.Socket)
	// Hold leaves s in the readers list when the exchange is over, for a
	// client that stays silent until it hears its answer (SOCKS5): the
	// relay that follows wants it there, and taking it out and back costs
	// two epoll_ctl calls per connection. Until the relay takes s over, a
	// parked handler takes it out at the first event, lazily, and leaves
	// it without a handler, as Done would have it.
	Hold bool
	// Fail runs on a failure (the deadline, EOF, Limit, a Step error); it
	// logs and closes s.
	Fail func(s *loop.Socket, err error)
}

// Errors of a preamble that Step does not make.
var (
	ErrPreambleTooLong = errors.New("too many bytes before the end of the exchange")
	ErrPreambleEOF     = errors.New("closed during the exchange")
)

// Start runs the exchange on s, which must have no handler.
func (p *Preamble) Start(s *loop.Socket) {
	r := &preambleRun{p: p}
	s.SetHandler(r)
	s.SetTimer(p.Timeout, func() { r.fail(s, fmt.Errorf("exchange not over within %v", p.Timeout)) })
	// A client often speaks at once (a SOCKS5 greeting, a CONNECT request):
	// reading now spares a pass of the loop; Readable watches s when it
	// must wait.
	r.Readable(s)
}

// preambleRun is one socket's exchange; buf is taken at the first read.
type preambleRun struct {
	p   *Preamble
	buf []byte
	n   int
}

func (r *preambleRun) Readable(s *loop.Socket) {
	if r.buf == nil {
		r.buf = getBuffer(r.p.Limit)
	}
	if r.n == len(r.buf) {
		r.fail(s, ErrPreambleTooLong)
		return
	}
	n, err := s.Read(r.buf[r.n:])
	switch {
	case err == unix.EAGAIN:
		s.Loop().WatchReader(s)
		return
	case err != nil:
		r.fail(s, err)
		return
	case n == 0:
		r.fail(s, ErrPreambleEOF)
		return
	}
	r.n += n
	for {
		used, done, err := r.p.Step(s, r.buf[:r.n])
		if err != nil {
			r.fail(s, err)
			return
		}
		r.n = copy(r.buf, r.buf[used:r.n])
		if done {
			r.finish(s)
			return
		}
		if used == 0 {
			if r.n == len(r.buf) {
				r.fail(s, ErrPreambleTooLong)
				return
			}
			s.Loop().WatchReader(s)
			return
		}
	}
}

// Writable is never called: a preamble only reads, and writes its short
// answers at once.
func (*preambleRun) Writable(*loop.Socket) {}

func (r *preambleRun) finish(s *loop.Socket) {
	s.StopTimer()
	if r.p.Hold && s.Reading() {
		s.SetHandler(parked{})
	} else {
		s.Loop().UnwatchReader(s)
		s.SetHandler(nil)
	}
	if r.n > 0 {
		s.Stash(r.buf[:r.n])
	}
	r.release()
	r.p.Done(s)
}

// parked is the handler of a socket a Preamble with Hold handed over
// while still in the readers list: what the socket reports before the
// relay takes it (early data, a hang-up) takes it out of the list and
// leaves it without a handler, where a hang-up closes it.
type parked struct{}

func (parked) Readable(s *loop.Socket) {
	s.Loop().UnwatchReader(s)
	s.SetHandler(nil)
}

func (parked) Writable(*loop.Socket) {}

func (r *preambleRun) fail(s *loop.Socket, err error) {
	s.StopTimer()
	r.release()
	r.p.Fail(s, err)
}

func (r *preambleRun) release() {
	putBuffer(r.buf)
	r.buf = nil
}

// buffers are pools of preamble buffers by size class (1, 2, 4, 8, 16
// KiB): an exchange holds one only while it runs, so that thousands of
// relayed connections leave no garbage of them behind.
var buffers [5]sync.Pool

func sizeClass(limit int) int {
	for c := range buffers {
		if limit <= 1024<<c {
			return c
		}
	}
	return -1
}

func getBuffer(limit int) []byte {
	c := sizeClass(limit)
	if c < 0 {
		return make([]byte, limit)
	}
	if b, ok := buffers[c].Get().(*[]byte); ok {
		return (*b)[:limit]
	}
	return make([]byte, limit, 1024<<c)
}

func putBuffer(b []byte) {
	if c := sizeClass(cap(b)); c >= 0 && cap(b) == 1024<<c {
		b = b[:cap(b)]
		buffers[c].Put(&b)
	}
}

// WriteAll writes a short message (a protocol answer) to s at once. The
// peer is waiting for it with nothing else in flight, so the socket's send
// buffer (at least 4 KiB, tcp_wmem's minimum) takes it whole; a short write
// is reported as an error rather than finished later.
func WriteAll(s *loop.Socket, msg []byte) error {
	n, err := s.Write(msg)
	if err == nil && n < len(msg) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(msg))
	}
	return err
}
