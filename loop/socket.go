package loop

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/nproxy/nproxy/buffer"
	"golang.org/x/sys/unix"
)

// Handler receives a socket's readiness events. Connectors install their own
// while they run a protocol state machine (a CONNECT request, the dual
// decision, a handshake); the relay installs its own once a pair is joined.
// Both methods run on the loop goroutine and must not block.
type Handler interface {
	// Readable is called when the socket has data, EOF or an error to read.
	Readable(s *Socket)
	// Writable is called when the socket in the writers list can take data.
	Writable(s *Socket)
}

// Hook sees every chunk of data read from a socket before it goes to the
// peer, and returns what goes instead (possibly data itself, rewritten in
// place). It is Net::Proxy's per-connector hook; s.Connector tells which
// connector read the data.
type Hook func(data []byte, s *Socket) []byte

// Transport replaces the socket's fd for reading and writing, for sockets
// whose bytes are transformed (TLS). A socket with a transport never splices.
type Transport interface {
	// Recv reads into p like read(2): (0, nil) is EOF; unix.EAGAIN means
	// nothing is ready now.
	Recv(p []byte) (int, error)
	// Send writes from p like write(2), possibly partially.
	Send(p []byte) (int, error)
	// CloseWrite ends the outgoing direction, as shutdown(SHUT_WR) does.
	CloseWrite() error
	// Close releases the transport; the loop closes the fd itself.
	Close() error
}

// Flusher is implemented by transports that hold output of their own, such
// as TLS records not yet sent: the loop counts it as pending for the socket
// and calls Flush when the socket is writable. It watches the fd for
// writability only while FdBlocked: output still being prepared off the
// loop (TLS plaintext being encrypted) is the transport's to announce,
// through Notify, and meanwhile a level-triggered writable fd would wake the
// loop on every pass with nothing to write.
type Flusher interface {
	// Flush writes held output to the fd; unix.EAGAIN means it must wait.
	Flush() error
	// Buffered reports the bytes held.
	Buffered() int
	// FdBlocked reports whether held output waits for the fd to take it.
	// A transport that says no promises a Notify (writable) once it has
	// output for the fd or room for more data from the relay.
	FdBlocked() bool
}

// Closer is told when a socket is closed. The proxy uses it to count closed
// connections on the in side.
type Closer interface {
	SocketClosed(s *Socket)
}

// Socket is one file descriptor in the loop, with Net::Proxy's per-socket
// slots. It belongs to its loop: only the loop goroutine may touch it.
type Socket struct {
	// Peer is the socket at the other end of the relay.
	Peer *Socket
	// Connector is the connector that created the socket.
	Connector any
	// State is free for the connector's own bookkeeping.
	State any
	// Hook, if set, sees the data read from this socket.
	Hook Hook
	// Closer, if set, is told when the socket closes.
	Closer Closer

	fd        int
	wfd       int // the fd written to: fd, except for a split socket
	loop      *Loop
	handler   Handler
	transport Transport
	out       buffer.Queue // Net::Proxy's buffer: data waiting to be written to this socket
	pipe      *buffer.Pipe // spliced data waiting to be written to this socket
	timer     *Timer
	born      int64 // for the access log's duration (Loop.now)
	lastRead  int64 // the pass that last read from the socket (IdleTimeout; Loop.now)
	gate      *Gate // the gate that admitted the client, counted until it closes
	traffic   Traffic
	dgram     *datagramState // set for datagram sockets (see SetDatagram)
	ext       *extra         // the slots few sockets use: see addr.go

	// Raw says the socket is a plain stream that may be spliced (TCP, unix
	// stream, a pipe): no transport and no protocol framing.
	Raw bool

	// The small fields, together so that no padding follows each: a socket
	// lives as long as its connection, and an idle UDP flow is two of them.
	interest     uint8 // what the watch lists want
	mask         uint8 // what the epoll set has; differs from interest only inside a hand-over
	end          End
	readDone     bool // EOF or error read: nothing more comes from this socket
	writeDone    bool // shut down for writing
	shutPending  bool // shut down for writing once out drains
	closePending bool // close once out drains
	registered   bool // in the epoll set
	detached     bool // out of the poller: nothing more can happen on it
	closed       bool
	streaming    bool // a read filled the copy window: spliced from now on (see copySmall)
}

// Fd returns the socket's file descriptor.
func (s *Socket) Fd() int { return s.fd }

// Loop returns the loop the socket belongs to.
func (s *Socket) Loop() *Loop { return s.loop }

// Closed reports whether the socket was closed.
func (s *Socket) Closed() bool { return s.closed }

// SetNick sets the name used for the socket in log messages.
func (s *Socket) SetNick(nick string) { s.extra().nick = nick }

// Nick returns the socket's name for log messages. Unless set, it is the
// remote address, computed on first use because formatting a name for every
// accepted connection would cost connections per second.
func (s *Socket) Nick() string {
	x := s.extra()
	if x.nick == "" {
		a := x.remote
		if !a.IsValid() && s.fd < 0 {
			a = s.RemoteAddr() // a Virtual socket's, from its transport
		}
		if a.IsValid() {
			x.nick = a.String()
		} else {
			x.nick = remoteName(s.fd)
		}
	}
	return x.nick
}

// SetHandler makes h receive the socket's events.
func (s *Socket) SetHandler(h Handler) { s.handler = h }

// SetTransport makes the socket read and write through t; it stops being Raw.
func (s *Socket) SetTransport(t Transport) {
	s.transport = t
	s.Raw = false
}

// Transport returns the socket's transport, or nil when it uses its fd.
func (s *Socket) Transport() Transport { return s.transport }

// Read reads from the socket (through its transport if any) like read(2).
func (s *Socket) Read(p []byte) (int, error) {
	if s.transport != nil {
		return s.transport.Recv(p)
	}
	return unix.Read(s.fd, p)
}

// Write writes to the socket (through its transport if any) like write(2).
func (s *Socket) Write(p []byte) (int, error) {
	if s.transport != nil {
		return s.transport.Send(p)
	}
	return unix.Write(s.wfd, p)
}

// Stash keeps data read from the socket before the relay started, as
// Net::Proxy's dual and connect connectors must: the relay delivers stashed
// bytes to the peer first, in order. They pass through the socket's hook now,
// like any data read later.
func (s *Socket) Stash(data []byte) {
	if s.Hook != nil {
		data = s.Hook(data, s)
	}
	s.extra().early.Push(s.loop.rings, data)
}

// Pending reports the bytes waiting to be written to the socket.
func (s *Socket) Pending() int {
	n := s.out.Len()
	if s.pipe != nil {
		n += s.pipe.N
	}
	if f, ok := s.transport.(Flusher); ok {
		n += f.Buffered()
	}
	return n
}

// SetTimer arms the socket's single timer, replacing any previous one; it is
// stopped when the socket closes. Connectors use it for their deadlines.
func (s *Socket) SetTimer(d time.Duration, f func()) {
	s.StopTimer()
	s.timer = s.loop.AfterFunc(d, f)
}

// StopTimer stops the socket's timer, if any.
func (s *Socket) StopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

func remoteName(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return "fd " + strconv.Itoa(fd)
	}
	return sockaddrString(sa)
}

func localName(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "fd " + strconv.Itoa(fd)
	}
	return sockaddrString(sa)
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return "?"
}
