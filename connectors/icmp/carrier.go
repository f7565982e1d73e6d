package icmp

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Stats counts the packets a connector dropped, by reason. The counters may
// be read from any goroutine.
type Stats struct {
	// Malformed counts ptunnel packets that do not parse: short, a data
	// length beyond the packet or 1024 bytes, an unknown state.
	Malformed atomic.Uint64
	// Unknown counts packets for sessions that do not exist or that come
	// from another address than the session's peer.
	Unknown atomic.Uint64
	// Refused counts session starts turned away: too many sessions, an id
	// in use or recently closed (a replay), a destination not allowed, no
	// answer to the challenge in time.
	Refused atomic.Uint64
	// AuthFailed counts wrong answers to the password challenge.
	AuthFailed atomic.Uint64
}

// ErrNoRawSocket says why an icmp connector cannot work: raw ICMP sockets
// need CAP_NET_RAW.
var ErrNoRawSocket = errors.New("icmp: raw ICMP sockets need CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on the binary)")

// readBurst bounds the packets one readiness event reads, so that a flood on
// the raw socket cannot starve the loop's other sockets; the level-triggered
// fd brings the loop back for the rest.
const readBurst = 64

// carrier is one raw ICMP socket on a loop and the sessions it carries. A
// raw socket sees every ICMP packet the host receives, so packets are sorted
// by flag, session id and source address.
type carrier struct {
	l        *loop.Loop
	sock     *loop.Socket
	log      *slog.Logger
	stats    *Stats
	role     role
	sessions map[uint16]*session
	// start, on the proxy side, handles a start packet for a session that
	// does not exist; nil on the client side.
	start func(p *packet, src [4]byte)
	in    [2048]byte      // one received packet
	out   [maxData]byte   // one chunk read from a local stream
	ack   [headerLen]byte // an explicit ack being sent
}

// role is what distinguishes a ptunnel client from a proxy on the wire.
type role struct {
	flag, peerFlag uint32
	icmpType       uint8
}

var (
	clientRole = role{flag: userFlag, peerFlag: proxyFlag, icmpType: echoRequest}
	proxyRole  = role{flag: proxyFlag, peerFlag: userFlag, icmpType: echoReply}
)

func openCarrier(l *loop.Loop, r role, stats *Stats) (*carrier, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return nil, ErrNoRawSocket
	}
	if err != nil {
		return nil, fmt.Errorf("icmp: raw socket: %w", err)
	}
	// A window of 64 packets each way per session arrives in bursts: a
	// larger receive buffer keeps the kernel from dropping them.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	c := &carrier{l: l, log: l.Logger(), stats: stats, role: r, sessions: map[uint16]*session{}}
	c.sock, err = l.Adopt(fd, c)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	c.sock.SetNick("icmp raw socket")
	l.WatchReader(c.sock)
	return c, nil
}

// Readable reads the packets waiting on the raw socket, one at a time.
func (c *carrier) Readable(s *loop.Socket) {
	for i := 0; i < readBurst; i++ {
		n, err := unix.Read(s.Fd(), c.in[:])
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err != nil {
			c.log.Error("icmp: reading the raw socket", "err", err)
			return
		}
		c.handle(c.in[:n])
	}
}

// Writable is never asked for: a raw socket that cannot take a packet drops
// it, and the resend timer makes up for it.
func (c *carrier) Writable(*loop.Socket) {}

func (c *carrier) handle(b []byte) {
	msg, src, err := stripIP(b)
	if err != nil {
		return
	}
	p, err := decode(msg)
	switch {
	case err == errMagic || err == errShort && !hasMagic(msg):
		return // someone else's ICMP
	case err != nil:
		c.stats.Malformed.Add(1)
		c.log.Debug("icmp: malformed ptunnel packet dropped", "from", ipString(src), "err", err)
		return
	case p.flag != c.role.peerFlag:
		return // our own packets, or the kernel's echo of them
	}
	s := c.sessions[p.id]
	switch {
	case s == nil && p.state == stateStart && c.start != nil:
		c.start(&p, src)
	case s == nil && p.state == stateClose:
		// The second of a pair of closes, or a close after ours.
	case s == nil || s.peerIP != src:
		c.stats.Unknown.Add(1)
		c.log.Debug("icmp: packet for an unknown session dropped", "from", ipString(src), "id", p.id, "state", stateNames[p.state])
	default:
		s.receive(&p)
	}
}

func hasMagic(msg []byte) bool {
	return len(msg) >= icmpHeader+4 && msg[icmpHeader] == 0xD5 && msg[icmpHeader+1] == 0x20 && msg[icmpHeader+2] == 0x08 && msg[icmpHeader+3] == 0x80
}

// refuse tells a client that its tunnel will not open, with the close a
// session would end with, so that it need not wait for its timeout.
func (c *carrier) refuse(p *packet, src [4]byte) {
	close := packet{icmpType: c.role.icmpType, icmpID: p.icmpID, state: stateClose, flag: c.role.flag,
		ack: p.seq, id: p.id}
	to := unix.SockaddrInet4{Addr: src}
	c.send(encode(c.ack[:], &close, 0), &to)
}

func (c *carrier) send(b []byte, to *unix.SockaddrInet4) {
	// A full socket buffer or an unreachable peer loses the packet like the
	// network would; the resend timer takes over.
	if err := unix.Sendto(c.sock.Fd(), b, 0, to); err != nil && err != unix.EAGAIN && err != unix.ENOBUFS {
		c.log.Debug("icmp: send failed", "err", err)
	}
}

func ipString(a [4]byte) string {
	return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3])
}
