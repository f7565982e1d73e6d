package icmp

import (
	"time"

	"github.com/nproxy/nproxy/connectors/internal/tunnel"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Timings of the reliability mechanism (see docs/icmp.md).
const (
	tick        = 50 * time.Millisecond // resend, ack and expiry checks
	resendAfter = 1500 * time.Millisecond
	// fastResendAfter keeps duplicate acks from resending a packet that
	// may still be on its way.
	fastResendAfter = 20 * time.Millisecond
	keepaliveAfter  = time.Second      // ptunnel's explicit ack interval
	idleTimeout     = 60 * time.Second // ptunnel's automatic close
	authTimeout     = 10 * time.Second
	ackEvery        = 16 // in-order packets received before an explicit ack
)

type sentPacket struct {
	buf [maxPacket]byte
	n   int
	at  time.Time
}

type recvSlot struct {
	buf  [maxData]byte
	n    int
	full bool
}

// session is one tunnel: a window of packets each way between a peer on the
// raw socket and a local stream, the tunnel's end of a socketpair whose
// other end the relay joins to the client or server.
type session struct {
	c        *carrier
	id       uint16
	icmpID   uint16
	peer     unix.SockaddrInet4
	peerIP   [4]byte
	dstIP    [4]byte // sent in the start packet (client side)
	dstPort  uint32
	password string
	authed   bool
	started  time.Time
	// challenge is the one the proxy sent, until answered.
	challenge []byte
	local     *loop.Socket
	timer     *loop.Timer

	mySeq    uint16 // sequence number of the next packet sent
	icmpSeq  uint16
	sendBase uint16 // oldest packet not acked
	unacked  int
	lastSend time.Time
	sent     [window]sentPacket

	nextRemote uint16 // next sequence number expected in order
	deliverSeq uint16 // oldest packet received but not written to local
	deliverOff int
	dupAcks    int // packets in a row that acked nothing new
	sinceAck   int // packets received in order since an ack went out
	lastRecv   time.Time
	recv       [window]recvSlot

	localEOF   bool // the local stream ended: close once all is acked
	peerClosed bool // the peer closed: end local once all is written
	ended      bool
	// onAuth, if set, runs once the peer has answered the challenge (proxy
	// side): the proxy connects the destination then.
	onAuth func(*session)
	// onEnd, if set, learns that the session ended (the proxy remembers
	// the id against replays).
	onEnd func(*session)
}

func newSession(c *carrier, id, icmpID uint16, peer [4]byte, password string) *session {
	now := time.Now()
	s := &session{c: c, id: id, icmpID: icmpID, peerIP: peer, password: password,
		started: now, lastRecv: now, lastSend: now, authed: password == ""}
	s.peer.Addr = peer
	c.sessions[id] = s
	s.timer = c.l.AfterFunc(tick, s.check)
	return s
}

// attach gives the session its local stream: the tunnel's end of a new
// socketpair. It returns the other end, for the relay.
func (s *session) attach() (*loop.Socket, error) {
	relaySide, local, err := tunnel.Pair(s.c.l, s)
	if err != nil {
		return nil, err
	}
	s.local = local
	if !s.authed {
		s.c.l.UnwatchReader(local) // nothing is sent before the challenge is answered
	}
	s.deliver()
	return relaySide, nil
}

// send queues a packet in the send window and sends it.
func (s *session) send(state uint32, data []byte) {
	slot := &s.sent[s.mySeq%window]
	p := packet{icmpType: s.c.role.icmpType, icmpID: s.icmpID, state: state, flag: s.c.role.flag,
		ack: s.nextRemote - 1, seq: s.mySeq, id: s.id, data: data}
	if state == stateStart {
		p.dstIP, p.dstPort = s.dstIP, s.dstPort
	}
	b := encode(slot.buf[:], &p, s.icmpSeq)
	s.icmpSeq++
	slot.n = len(b)
	slot.at = time.Now()
	s.lastSend = slot.at
	s.mySeq++
	s.unacked++
	s.sinceAck = 0
	s.c.send(b, &s.peer)
}

// receive handles a packet of this session from its peer.
func (s *session) receive(p *packet) {
	if s.ended {
		return
	}
	s.lastRecv = time.Now()
	switch p.state {
	case stateClose:
		s.peerClosed = true
		s.c.log.Info("icmp: session closed by peer", "id", s.id)
		if s.local == nil {
			s.end(false)
		}
		s.deliver()
		return
	case stateAuth:
		s.authenticate(p)
		return
	}
	if !s.authed {
		// Until the challenge is answered, the proxy takes nothing but the
		// (empty) start packet: data could come from anyone who saw the id.
		if p.state == stateStart {
			s.accept(p.seq, nil)
		}
		return
	}
	s.accept(p.seq, p.data)
	s.acked(p.ack)
}

// authenticate handles a challenge (client) or its response (proxy).
func (s *session) authenticate(p *packet) {
	if len(p.data) != challengeLn {
		s.c.stats.Malformed.Add(1)
		s.end(true)
		return
	}
	if s.c.role == clientRole {
		if s.password == "" {
			s.c.log.Error("icmp: the proxy asks for a password: set 'password'", "id", s.id)
			s.end(true)
			return
		}
		r := response(p.data, s.password)
		s.accept(p.seq, nil)
		s.send(stateAuth, r[:])
		s.authed = true
		if s.local != nil {
			s.c.l.WatchReader(s.local)
		}
		return
	}
	if s.authed {
		return // a resent response
	}
	if s.challenge == nil || !validResponse(s.challenge, p.data, s.password) {
		s.c.stats.AuthFailed.Add(1)
		s.c.log.Warn("icmp: wrong password", "from", ipString(s.peerIP), "id", s.id)
		s.end(true)
		return
	}
	s.authed, s.challenge = true, nil
	s.accept(p.seq, nil)
	s.acked(p.ack)
	if s.onAuth != nil {
		s.onAuth(s)
	}
}

// accept stores a packet in the receive window and advances the in-order
// point; what falls outside the window, or was seen already, is dropped.
func (s *session) accept(seq uint16, data []byte) {
	if seq-s.deliverSeq >= window {
		return
	}
	slot := &s.recv[seq%window]
	if slot.full {
		return
	}
	slot.n = copy(slot.buf[:], data)
	slot.full = true
	for s.nextRemote-s.deliverSeq < window && s.recv[s.nextRemote%window].full {
		s.nextRemote++
		s.sinceAck++
	}
	s.deliver()
	if s.sinceAck >= ackEvery && !s.peerClosed {
		s.sendAck()
	}
}

// deliver writes what arrived in order to the local stream.
func (s *session) deliver() {
	if s.local == nil || s.local.Closed() {
		return
	}
	for s.deliverSeq != s.nextRemote {
		slot := &s.recv[s.deliverSeq%window]
		if s.deliverOff < slot.n {
			n, err := unix.Write(s.local.Fd(), slot.buf[s.deliverOff:slot.n])
			if n > 0 {
				s.deliverOff += n
			}
			if err == unix.EAGAIN || s.deliverOff < slot.n && err == nil {
				s.c.l.WatchWriter(s.local)
				return
			}
			if err != nil {
				s.end(true) // the relay's end is gone
				return
			}
		}
		slot.full, slot.n, s.deliverOff = false, 0, 0
		s.deliverSeq++
	}
	s.c.l.UnwatchWriter(s.local)
	if s.peerClosed {
		s.end(false)
	}
}

// acked frees the packets the peer acknowledged: every one up to ack.
func (s *session) acked(ack uint16) {
	n := int(ack - s.sendBase + 1)
	if n == 0 && s.unacked > 0 {
		s.dupAck()
		return
	}
	if n <= 0 || n > s.unacked {
		return // an old ack, or none yet (65535 before the first packet)
	}
	s.dupAcks = 0
	s.sendBase += uint16(n)
	s.unacked -= n
	if s.localEOF {
		s.finish()
		return
	}
	if s.local != nil && s.authed {
		s.c.l.WatchReader(s.local)
	}
}

// sendAck sends an explicit ack outside the sequence: it carries the
// sequence number before the oldest unacked packet, which the peer has
// already received, so the peer drops it as a duplicate but takes its ack
// (ptunnel handles the ack of every packet it reads). ptunnel's own acks take
// a sequence number and a place in the window; with the window full of
// packets the peer is missing, neither side could then tell the other what
// it received, and both would stall.
// dupAck counts packets that acknowledge nothing new while some wait: the
// third says the oldest was lost (the peer's data keeps coming, so it is
// alive), and it is resent at once instead of after resendAfter.
func (s *session) dupAck() {
	s.dupAcks++
	if s.dupAcks != 3 {
		return
	}
	slot := &s.sent[s.sendBase%window]
	if time.Since(slot.at) < fastResendAfter {
		return
	}
	s.resendSlot(slot, time.Now())
}

func (s *session) sendAck() {
	p := packet{icmpType: s.c.role.icmpType, icmpID: s.icmpID, state: stateAck, flag: s.c.role.flag,
		ack: s.nextRemote - 1, seq: s.sendBase - 1, id: s.id}
	b := encode(s.c.ack[:], &p, s.icmpSeq)
	s.icmpSeq++
	s.lastSend = time.Now()
	s.sinceAck = 0
	s.c.send(b, &s.peer)
}

// Readable reads the local stream into data packets while the window has
// room.
func (s *session) Readable(local *loop.Socket) {
	for s.unacked < window {
		n, err := unix.Read(local.Fd(), s.c.out[:])
		if err == unix.EAGAIN {
			return
		}
		if n <= 0 {
			s.localEOF = true
			s.c.l.UnwatchReader(local)
			s.finish()
			return
		}
		s.send(stateData, s.c.out[:n])
	}
	s.c.l.UnwatchReader(local)
}

// Writable continues writing received data to the local stream.
func (s *session) Writable(*loop.Socket) { s.deliver() }

// finish ends the session once the local stream has ended and the peer has
// everything: ptunnel's close is not a half-close, so it must not overtake
// data.
func (s *session) finish() {
	if s.localEOF && s.unacked == 0 {
		s.end(true)
	}
}

// check runs every tick: resends, explicit acks, keepalives and timeouts.
func (s *session) check() {
	if s.ended {
		return
	}
	now := time.Now()
	switch {
	case now.Sub(s.lastRecv) > idleTimeout:
		s.c.log.Info("icmp: session timed out", "id", s.id)
		s.end(true)
		return
	case !s.authed && s.c.role == proxyRole && now.Sub(s.started) > authTimeout:
		s.c.stats.Refused.Add(1)
		s.c.log.Info("icmp: no answer to the challenge", "from", ipString(s.peerIP), "id", s.id)
		s.end(true)
		return
	}
	if s.peerClosed {
		// Only the local stream's drain is awaited now.
		s.timer = s.c.l.AfterFunc(tick, s.check)
		return
	}
	s.resend(now)
	if s.sinceAck > 0 || now.Sub(s.lastSend) > keepaliveAfter {
		s.sendAck()
	}
	s.timer = s.c.l.AfterFunc(tick, s.check)
}

// resend sends again every packet that waited resendAfter for its ack.
// ptunnel resends only the oldest, one per interval, so that a burst of k
// losses takes k intervals to heal; its receiver ignores the duplicates.
func (s *session) resend(now time.Time) {
	for i := 0; i < s.unacked; i++ {
		slot := &s.sent[(s.sendBase+uint16(i))%window]
		if now.Sub(slot.at) <= resendAfter {
			continue
		}
		s.resendSlot(slot, now)
	}
}

func (s *session) resendSlot(slot *sentPacket, now time.Time) {
	setICMPSeq(slot.buf[:slot.n], s.icmpSeq)
	s.icmpSeq++
	slot.at = now
	s.c.send(slot.buf[:slot.n], &s.peer)
}

// end forgets the session; with notify, it tells the peer with two closes,
// as ptunnel does, hoping one arrives. The local stream ends after what
// arrived in order is written.
func (s *session) end(notify bool) {
	if s.ended {
		return
	}
	s.ended = true
	if notify {
		s.send(stateClose, nil)
		s.send(stateClose, nil)
	}
	if s.c.sessions[s.id] == s {
		delete(s.c.sessions, s.id)
	}
	s.timer.Stop()
	if s.local != nil {
		s.c.l.Close(s.local)
	}
	if s.onEnd != nil {
		s.onEnd(s)
	}
}
