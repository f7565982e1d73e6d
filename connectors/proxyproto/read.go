package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/nproxy/nproxy/loop"
	pp "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// reading is a client whose header is not complete yet. got holds the
// header bytes consumed so far; it stays nil for a header that comes in one
// segment, as from haproxy.
type reading struct {
	version int
	next    loop.AcceptFunc
	got     []byte
	timeout time.Duration // for the whole header, from the first wait
	waiting bool          // s's handler is this reading, the deadline is set
	stash   bool          // read, not peek: the bytes after the header go to s's stash
}

// peeks are the buffers Readable peeks (or, with stash, reads) into: one
// per loop pass at most, so a pool spares a 4 KiB allocation per read;
// what is stashed is copied out of it (loop.Socket.Stash).
var peeks = sync.Pool{New: func() any { return new([MaxV2Header]byte) }}

// Readable peeks at what the client sent, consumes only what belongs to the
// header (see frame), and hands the client on once the header is whole.
// With stash it reads instead, and stashes what follows the header.
func (r *reading) Readable(s *loop.Socket) {
	peek := peeks.Get().(*[MaxV2Header]byte)
	defer peeks.Put(peek)
	flags := unix.MSG_PEEK
	if r.stash {
		flags = 0
	}
	n, err := recv(s.Fd(), peek[:MaxV2Header-len(r.got)], flags)
	switch {
	case err == unix.EAGAIN:
		r.wait(s)
		return
	case err != nil:
		refuse(s, fmt.Errorf("reading the PROXY header: %w", err))
		return
	case n == 0:
		refuse(s, errors.New("closed before a complete PROXY header"))
		return
	}
	data := peek[:n]
	if r.got != nil {
		data = append(r.got, data...)
	}
	take, complete, err := frame(data, r.version)
	if err != nil {
		refuse(s, err)
		return
	}
	// Consume what was peeked and belongs to the header; the header bytes
	// read before are in r.got already. Read, not peeked, bytes are
	// consumed already: all of them are the header's while it is not
	// complete (frame counts no byte after it).
	if !r.stash {
		if err := consume(s.Fd(), peek[:take-len(r.got)]); err != nil {
			refuse(s, fmt.Errorf("reading the PROXY header: %w", err))
			return
		}
	}
	if !complete {
		r.got = append(r.got[:0:0], data[:take]...)
		r.wait(s)
		return
	}
	if err := apply(s, data[:take]); err != nil {
		refuse(s, err)
		return
	}
	if r.waiting {
		r.got = nil
		s.StopTimer()
		s.Loop().UnwatchReader(s)
		s.SetHandler(nil)
	}
	if r.stash && take < len(data) {
		s.Stash(data[take:])
	}
	r.next(s)
}

// wait watches s for the rest of the header. The first wait makes a copy
// of r s's handler, and sets the deadline: a header read at once, the
// common case, costs no allocation and no timer.
func (r *reading) wait(s *loop.Socket) {
	if !r.waiting {
		h := new(reading)
		*h = *r
		h.waiting = true
		s.SetHandler(h)
		timeout := h.timeout
		s.SetTimer(timeout, func() { refuse(s, fmt.Errorf("no complete PROXY header within %v", timeout)) })
	}
	s.Loop().WatchReader(s)
}

// recv is recv(2) (with MSG_PEEK, or none to read), and consume read(2),
// made with RawSyscall: on a non-blocking socket they never block, and
// sparing the Go scheduler's entersyscall/exitsyscall bookkeeping takes a
// visible share of the header's cost (the header is two of a short
// connection's ~18 syscalls, or one when it is stashed).
func recv(fd int, p []byte, flags int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func consume(fd int, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return errno
	}
	return nil
}

// Writable is never called: the client is only read.
func (*reading) Writable(*loop.Socket) {}

// apply parses a whole header and sets the client's addresses from it.
func apply(s *loop.Socket, header []byte) error {
	h, err := Parse(header)
	if err != nil {
		return err
	}
	if !h.Command.IsProxy() {
		return nil // LOCAL / UNKNOWN: a health check, the socket's own addresses stand
	}
	src, dst, ok := h.TCPAddrs()
	if !ok {
		return nil // a unix or datagram source means nothing for a TCP client
	}
	s.SetRemoteAddr(tcpAddrPort(src))
	s.SetLocalAddr(tcpAddrPort(dst))
	return nil
}

// parser is the reader go-proxyproto parses from, pooled: making its two
// readers and a buffer for each header cost three allocations per
// connection.
type parser struct {
	header bytes.Reader
	r      *bufio.Reader
}

var parsers = sync.Pool{New: func() any {
	p := new(parser)
	p.r = bufio.NewReaderSize(&p.header, MaxV2Header)
	return p
}}

// Parse parses one whole header, as framed by the loop, with go-proxyproto,
// and checks its TLVs.
func Parse(header []byte) (*pp.Header, error) {
	p := parsers.Get().(*parser)
	p.header.Reset(header)
	p.r.Reset(&p.header)
	h, err := pp.Read(p.r)
	p.header.Reset(nil)
	p.r.Reset(&p.header)
	parsers.Put(p)
	if err != nil {
		return nil, err
	}
	if _, err := h.TLVs(); err != nil {
		return nil, fmt.Errorf("PROXY header: %w", err)
	}
	return h, nil
}

func tcpAddrPort(a *net.TCPAddr) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}
