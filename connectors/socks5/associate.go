package socks5

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Defaults of the UDP ASSOCIATE limits, used when a field of In is 0.
const (
	DefaultUDPTimeout      = 60 * time.Second
	DefaultMaxAssociations = 1000
	DefaultMaxDestinations = 256
)

// udpBatchSize is how many datagrams one recvmmsg(2) takes; udpBatchRounds
// bounds the batches per readiness event, so that one busy association
// cannot starve the loop's other sockets.
const (
	udpBatchSize   = 8
	udpBatchRounds = 4
)

// udpLoop is what one connector's associations on one loop share: the batch
// they receive into and the buffer replies are built in. The loop runs one
// handler at a time, so one of each is enough; they are made at the first
// association.
type udpLoop struct {
	in    *In
	batch *loop.DatagramBatch
	reply []byte
}

// association is one UDP ASSOCIATE: its TCP control connection, the relay
// socket the client sends to, and the socket that talks to destinations. It
// is the handler of all three.
type association struct {
	u       *udpLoop
	l       *loop.Loop
	control *loop.Socket
	relay   *loop.Socket
	out     *loop.Socket
	out6    bool // out is an IPv6 socket (IPv4 destinations go mapped)

	clientIP   netip.Addr
	clientPort uint16          // 0: any port of clientIP
	client     loop.PacketAddr // the source of the client's latest datagram: where replies go
	to         loop.PacketAddr // scratch for a destination

	dests map[netip.AddrPort]dest
	names map[string]*name
	count int // destinations: addresses the client named, and name:port pairs
	held  heldBytes
	last  time.Time // the latest datagram either way
}

// dest is a destination address: replies from it are let through. checked
// says the client named it as an address, and allowed what the rules said.
type dest struct{ checked, allowed bool }

// name is a destination name: its address once resolved, and the datagrams
// waiting for it meanwhile.
type name struct {
	addr      netip.Addr
	ports     []namePort // the rules' answers, one per port used
	resolving bool
	failed    time.Time
	waiting   []heldDatagram
}

type namePort struct {
	port    uint16
	allowed bool
}

type heldDatagram struct {
	port uint16
	data []byte
}

// heldBytes counts an association's datagrams waiting for names.
type heldBytes struct{ n, bytes int }

// Bounds of the datagrams an association holds while names resolve: the
// udp connector's bound while a flow opens, and the loop's queue bytes.
const (
	maxHeld      = 64
	maxHeldBytes = 256 << 10
)

// nameRetry is how long a name that did not resolve is not asked again.
const nameRetry = 10 * time.Second

// open starts an association for client, whose request named port as the
// one it sends from (0: any), and answers it.
func (u *udpLoop) open(client *loop.Socket, port uint16) {
	in, l := u.in, client.Loop()
	// Taken first, so that loops opening at once cannot pass the bound.
	if n := in.udp.Associations.Add(1); n > int64(in.maxAssociations()) {
		in.udp.Associations.Add(-1)
		in.fail(client, &replyError{repFailure, fmt.Sprintf("UDP ASSOCIATE refused: %d associations open (max_associations)", n-1)})
		return
	}
	a, err := u.sockets(client, port)
	if err != nil {
		in.udp.Associations.Add(-1)
		in.fail(client, &replyError{repFailure, err.Error()})
		return
	}
	relayed, _ := boundAddr(a.relay.Fd())
	in.udp.Opened.Add(1)
	client.SetHandler(a)
	client.Closer = a
	client.SetTimer(in.udpTimeout(), a.expire)
	l.WatchReader(client)
	l.Logger().Debug(fmt.Sprintf("socks5 in: %s: UDP association, relay %s", client.Nick(), relayed))
	if err := writeReply(client, repSucceeded, relayed); err != nil {
		l.Close(client)
	}
}

// sockets makes the association of client, with its relay socket on the
// address the client reached and its outgoing socket.
func (u *udpLoop) sockets(client *loop.Socket, port uint16) (*association, error) {
	l := client.Loop()
	local, err := boundAddr(client.Fd())
	if err != nil {
		return nil, err
	}
	if u.batch == nil {
		// One byte more than the longest datagram, so that none is truncated
		// unseen; the reply buffer holds the longest with the longest header.
		u.batch = loop.NewDatagramBatch(udpBatchSize, loop.MaxDatagram+1)
		u.reply = make([]byte, 0, 3+1+16+2+loop.MaxDatagram+1)
	}
	a := &association{u: u, l: l, control: client, clientIP: client.RemoteAddr().Addr().Unmap(),
		clientPort: port, dests: map[netip.AddrPort]dest{}, names: map[string]*name{}, last: time.Now()}
	if a.relay, err = l.ListenPacket(netip.AddrPortFrom(local.Addr(), 0), a); err != nil {
		return nil, fmt.Errorf("can't open a UDP relay on %s: %w", local.Addr(), err)
	}
	if a.out, a.out6, err = listenAny(l, a); err != nil {
		l.Close(a.relay)
		return nil, fmt.Errorf("can't open a UDP socket: %w", err)
	}
	return a, nil
}

// listenAny opens the socket an association sends to destinations from:
// IPv6 and IPv4 on [::], or IPv4 alone where the host has no IPv6.
func listenAny(l *loop.Loop, h loop.Handler) (*loop.Socket, bool, error) {
	s, err := l.ListenPacket(netip.AddrPortFrom(netip.IPv6Unspecified(), 0), h)
	if err == nil {
		return s, true, nil
	}
	s, err = l.ListenPacket(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), h)
	return s, false, err
}

// Readable implements loop.Handler for the association's three sockets.
func (a *association) Readable(s *loop.Socket) {
	switch s {
	case a.control:
		a.controlReadable()
	case a.relay:
		a.receive(s, a.fromClient)
	default:
		a.receive(s, a.fromDestination)
	}
}

// Writable implements loop.Handler: nothing waits to be written, since a
// datagram the kernel cannot take now is dropped.
func (a *association) Writable(*loop.Socket) {}

// controlReadable reads and discards what the client sends on the control
// connection, which carries nothing after the reply; EOF ends the
// association (RFC 1928 §7).
func (a *association) controlReadable() {
	var buf [256]byte
	for range 4 {
		n, err := a.control.Read(buf[:])
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil || n == 0:
			a.l.Close(a.control)
			return
		}
	}
}

// receive hands each datagram waiting on s to each, in batches.
func (a *association) receive(s *loop.Socket, each func([]byte, *loop.PacketAddr, bool)) {
	b := a.u.batch
	for round := 0; round < udpBatchRounds && !s.Closed(); round++ {
		n, err := b.Recv(s.Fd())
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR {
				a.l.Logger().Error(fmt.Sprintf("socks5 in: %s: UDP receive failed: %v", a.control.Nick(), err))
				a.l.Close(a.control)
			}
			return
		}
		for i := 0; i < n && !s.Closed(); i++ {
			each(b.Datagram(i))
		}
		if n < udpBatchSize {
			return // drained: another recvmmsg would only say EAGAIN
		}
	}
}

// expire ends the association once it has been idle for the timeout; the
// timer is armed once per timeout rather than moved on every datagram.
func (a *association) expire() {
	if rest := a.u.in.udpTimeout() - time.Since(a.last); rest > 0 {
		a.control.SetTimer(rest, a.expire)
		return
	}
	a.l.Logger().Debug(fmt.Sprintf("socks5 in: %s: UDP association idle, closed", a.control.Nick()))
	a.l.Close(a.control)
}

// SocketClosed implements loop.Closer: the control connection closed, and
// the association ends with it.
func (a *association) SocketClosed(*loop.Socket) {
	a.l.Close(a.relay)
	a.l.Close(a.out)
	a.names, a.dests = nil, nil
	a.u.in.udp.Associations.Add(-1)
}
