package loop

import (
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MaxDatagram is the largest UDP payload: what a datagram socket's read
// buffer must hold for no datagram to be truncated.
const MaxDatagram = 65535

// listenPacketBuffer is the receive buffer asked for a listening UDP socket.
const listenPacketBuffer = 4 << 20

// datagramRounds bounds the datagrams one readiness event moves, as
// readRounds does for streams.
const datagramRounds = 32

// DatagramOptions set how a datagram socket is relayed.
type DatagramOptions struct {
	// Max is the longest datagram relayed from the socket; longer ones are
	// dropped. 0 means MaxDatagram.
	Max int
	// Dropped, if set, counts the datagrams dropped on their way from this
	// socket (too long, or queued past the bound at the peer).
	Dropped *atomic.Uint64
}

// datagramState is what a datagram socket adds to a Socket. The queue is
// allocated the first time the socket cannot take a datagram: most flows
// never need one, and an idle flow keeps two datagram sockets.
type datagramState struct {
	opts  DatagramOptions
	queue *datagramQueue // datagrams waiting to be written to the socket
}

// queued reports the datagrams waiting to be written.
func (d *datagramState) queued() int {
	if d.queue == nil {
		return 0
	}
	return d.queue.len()
}

// SetDatagram makes s a datagram socket: the relay moves one datagram per
// read and write, never merging nor splitting them, and queues what the
// socket cannot take now up to a bound, then drops.
func (s *Socket) SetDatagram(o DatagramOptions) {
	s.dgram = &datagramState{opts: o}
	s.Raw = false
}

// Datagram reports whether s is a datagram socket.
func (s *Socket) Datagram() bool { return s.dgram != nil }

// Virtual makes a socket without a file descriptor of its own, whose reads
// and writes all go through t: a flow of datagrams that shares a listening
// socket with others. The poller never sees it: t's owner delivers its
// readiness with Notify, and t.Send may return unix.EAGAIN only if a Notify
// (writable) follows once it can send again. For a datagram socket, t.Recv
// returns one datagram per call, and (0, nil) is an empty datagram, not EOF.
func (l *Loop) Virtual(t Transport) *Socket {
	return &Socket{fd: -1, loop: l, transport: t, detached: true, born: l.now()}
}

// ListenPacket opens a UDP socket bound to addr whose readiness goes to h;
// it is in the readers list at once. An IPv6 unspecified address also
// receives IPv4 datagrams.
func (l *Loop) ListenPacket(addr netip.AddrPort, h Handler) (*Socket, error) {
	fd, err := unix.Socket(family(addr.Addr()), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := bindPacket(fd, addr, l.cfg.ReusePort); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Every client of the address shares this socket's receive queue, which
	// is all that absorbs a burst while the loop is busy: ask for a large
	// one (the kernel caps it at net.core.rmem_max, best effort).
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, listenPacketBuffer)
	s, _ := l.Adopt(fd, h)
	if sa, err := unix.Getsockname(fd); err == nil {
		s.SetNick(sockaddrString(sa))
	}
	l.WatchReader(s)
	return s, nil
}

// bindPacket binds a UDP socket. Port 0 asks for a port of the socket's
// own: with SO_REUSEADDR (or SO_REUSEPORT) the kernel may hand out one that
// another UDP socket with the option already holds, and the two would share
// its datagrams (seen: 148 of 3,000 sockets on 127.0.0.1), so those options
// are only for a given port, which every loop binds.
func bindPacket(fd int, addr netip.AddrPort, reusePort bool) error {
	if addr.Port() != 0 {
		return configureListener(fd, addr, reusePort)
	}
	if addr.Addr().Is6() && addr.Addr().IsUnspecified() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	return unix.Bind(fd, sockaddr(addr))
}

// datagramRelay is the handler of a relayed pair of datagram sockets. Unlike
// the stream relay it knows no EOF and no backpressure: a datagram the peer
// cannot take is queued up to a bound, then dropped, as the network would.
type datagramRelay struct{}

// relayDatagrams joins two datagram sockets. Datagrams the sockets' transports
// received before the relay (a flow's first datagrams) go first.
func (l *Loop) relayDatagrams(client, server *Socket) {
	if client.dgram == nil || server.dgram == nil {
		l.log.Error("can't relay datagrams to a stream", "client", client.Nick(), "server", server.Nick())
		l.Close(server)
		l.Close(client)
		return
	}
	client.Peer, server.Peer = server, client
	// The server side usually has no options of its own: it takes the
	// client's (the in connector's), so that its limit holds both ways and
	// every drop of the flow is counted in one place.
	if server.dgram.opts == (DatagramOptions{}) {
		server.dgram.opts = client.dgram.opts
	}
	for _, s := range [2]*Socket{client, server} {
		s.handler = datagramRelay{}
		l.setInterest(s, watchRead)
	}
	for _, s := range [2]*Socket{client, server} {
		if s.transport != nil {
			l.Notify(s, true, false)
		}
	}
}

func (datagramRelay) Readable(s *Socket) {
	l := s.loop
	buf := l.datagramBuffer()
	// A Virtual socket's datagrams are already in memory, and bounded by
	// its transport: deliver them all, or those left would wait for the
	// next datagram of the flow.
	for i := 0; (i < datagramRounds || s.fd < 0) && !s.closed; i++ {
		n, err := s.Read(buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.failDatagram(s, err)
			return
		case s.Peer == nil || s.Peer.closed:
			l.Close(s)
			return
		}
		l.relayDatagram(s, buf[:n])
	}
}

// relayDatagram moves one datagram read from src to its peer.
func (l *Loop) relayDatagram(src *Socket, data []byte) {
	if max := src.dgram.max(); len(data) > max {
		l.log.Debug("datagram too long, dropped", "socket", src.Nick(), "size", len(data), "max", max)
		src.dgram.dropped()
		return
	}
	if src.Hook != nil {
		if data = src.Hook(data, src); len(data) == 0 {
			return
		}
	}
	l.stats.Copied.Add(uint64(len(data)))
	dst := src.Peer
	if dst.dgram.queued() == 0 {
		_, err := dst.Write(data)
		switch err {
		case nil:
			return
		case unix.EAGAIN:
		case unix.ENOBUFS:
			// The kernel is short of buffers for the moment; UDP may drop.
			src.dgram.dropped()
			return
		default:
			l.failDatagram(dst, err)
			return
		}
	}
	if dst.dgram.queue == nil {
		dst.dgram.queue = new(datagramQueue)
	}
	if !dst.dgram.queue.push(data) {
		src.dgram.dropped()
		return
	}
	if dst.fd >= 0 {
		l.WatchWriter(dst)
	}
}

// Writable writes the datagrams queued for s.
func (datagramRelay) Writable(s *Socket) {
	l := s.loop
	q := s.dgram.queue
	for q != nil && q.len() > 0 {
		_, err := s.Write(q.peek())
		if err == unix.EAGAIN {
			return
		}
		if err != nil && err != unix.ENOBUFS {
			l.failDatagram(s, err)
			return
		}
		q.pop()
	}
	if s.fd >= 0 {
		l.UnwatchWriter(s)
	}
}

// failDatagram ends a flow on an error other than EAGAIN, typically
// ECONNREFUSED on a connected socket after an ICMP port unreachable: the
// pair is closed at once, since nothing of a datagram flow is worth
// finishing.
func (l *Loop) failDatagram(s *Socket, err error) {
	l.log.Debug("datagram flow ends", "socket", s.Nick(), "err", err)
	peer := s.Peer
	l.Close(s)
	if peer != nil {
		l.Close(peer)
	}
}

func (d *datagramState) max() int {
	if d.opts.Max <= 0 || d.opts.Max > MaxDatagram {
		return MaxDatagram
	}
	return d.opts.Max
}

func (d *datagramState) dropped() {
	if d.opts.Dropped != nil {
		d.opts.Dropped.Add(1)
	}
}

// datagramBuffer is the loop's read buffer for datagrams: the scratch
// buffer when it holds the largest datagram, so that none is truncated.
func (l *Loop) datagramBuffer() []byte {
	if len(l.scratch) <= MaxDatagram {
		l.scratch = make([]byte, MaxDatagram+1)
	}
	return l.scratch
}
