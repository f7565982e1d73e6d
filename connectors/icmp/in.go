package icmp

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/internal/tunnel"
	"github.com/nproxy/nproxy/loop"
)

// DefaultMaxTunnels is the most sessions an In serves at once when
// MaxTunnels is 0.
const DefaultMaxTunnels = 64

// replayWindow is how long a session id stays refused after its session
// ended, as ptunnel's proxy does: a replayed start packet opens nothing.
const replayWindow = 2 * idleTimeout

// In is a ptunnel proxy: it answers ptunnel clients (and icmp Outs) and
// hands each tunnel to the proxy's out connector as a client, whose
// destination (loop.Socket.Destination) is the one the client asked for.
type In struct {
	// Password is the password clients must prove they know (ptunnel's
	// -x); empty means none.
	Password string `param:"password"`
	// Allow lists the destinations clients may ask for: "addr",
	// "addr:port", "prefix/bits", "prefix/bits:port", "*:port"; empty
	// means any, as ptunnel's default.
	Allow []string `param:"allow"`
	// MaxTunnels bounds the sessions served at once (ptunnel's -m); 0
	// means DefaultMaxTunnels.
	MaxTunnels int `param:"max_tunnels"`
	// Hook, if set, sees the data that comes out of the tunnels.
	Hook loop.Hook
	// Stats counts the packets dropped.
	Stats Stats

	listening atomic.Bool
	recent    tunnel.Recent[uint16] // ended sessions' ids, against replays
	allow     []allowRule
}

type allowRule struct {
	prefix netip.Prefix // invalid: any address
	port   int          // 0: any port
}

// Validate implements connectors.Validator.
func (in *In) Validate() error {
	if in.MaxTunnels < 0 {
		return fmt.Errorf("max_tunnels %d is negative", in.MaxTunnels)
	}
	in.allow = in.allow[:0]
	for _, a := range in.Allow {
		r, err := parseAllow(a)
		if err != nil {
			return err
		}
		in.allow = append(in.allow, r)
	}
	return nil
}

func parseAllow(s string) (allowRule, error) {
	var r allowRule
	addr := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		p, err := strconv.Atoi(s[i+1:])
		if err != nil || p < 1 || p > 65535 {
			return r, fmt.Errorf("allow %q: bad port", s)
		}
		addr, r.port = s[:i], p
	}
	if addr == "*" {
		return r, nil
	}
	if !strings.Contains(addr, "/") {
		addr += "/32"
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil || !p.Addr().Is4() {
		return r, fmt.Errorf("allow %q: not an IPv4 address or prefix (ptunnel carries IPv4 only)", s)
	}
	r.prefix = p.Masked()
	return r, nil
}

func (in *In) allowed(ip [4]byte, port uint32) bool {
	if len(in.Allow) == 0 {
		return true
	}
	if len(in.allow) != len(in.Allow) && in.Validate() != nil {
		return false
	}
	a := netip.AddrFrom4(ip)
	for _, r := range in.allow {
		if (!r.prefix.IsValid() || r.prefix.Contains(a)) && (r.port == 0 || r.port == int(port)) {
			return true
		}
	}
	return false
}

// Listen implements connectors.In. A raw socket sees every ICMP packet, so
// only the first loop listens: with several, each would answer every client.
func (in *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if in.listening.Swap(true) {
		return nil
	}
	in.recent.Window = replayWindow
	c, err := openCarrier(l, proxyRole, &in.Stats)
	if err != nil {
		in.listening.Store(false)
		return err
	}
	c.start = func(p *packet, src [4]byte) { in.start(c, h, p, src) }
	return nil
}

func (in *In) max() int {
	if in.MaxTunnels == 0 {
		return DefaultMaxTunnels
	}
	return in.MaxTunnels
}

// start handles a tunnel request from a client.
func (in *In) start(c *carrier, h connectors.Handler, p *packet, src [4]byte) {
	dst := destination{ip: p.dstIP, port: p.dstPort}
	refuse := func(why string) {
		in.Stats.Refused.Add(1)
		c.log.Info("icmp: tunnel request refused", "from", ipString(src), "id", p.id, "to", dst.String(), "why", why)
	}
	switch {
	case in.recent.Has(p.id):
		refuse("id recently in use")
		return
	case len(c.sessions) >= in.max():
		refuse("too many tunnels")
		return
	case !in.allowed(p.dstIP, p.dstPort):
		refuse("destination not allowed")
		c.refuse(p, src)
		return
	}
	s := newSession(c, p.id, p.icmpID, src, in.Password)
	s.onEnd = func(s *session) { in.recent.Add(s.id) }
	s.onAuth = func(s *session) { in.connect(c, h, s, dst) }
	s.accept(p.seq, nil) // the start packet: its ack spares the client a resend
	if in.Password == "" {
		in.connect(c, h, s, dst)
		return
	}
	s.challenge = make([]byte, challengeLn)
	rand.Read(s.challenge)
	s.send(stateAuth, s.challenge)
}

// connect hands an open tunnel to the proxy as a new client.
func (in *In) connect(c *carrier, h connectors.Handler, s *session, dst destination) {
	client, err := s.attach()
	if err != nil {
		c.log.Error("icmp: socketpair", "err", err)
		s.end(true)
		return
	}
	client.Connector, client.Hook = in, in.Hook
	client.SetDestination(dst.Destination())
	client.SetNick(fmt.Sprintf("icmp %s id %d", ipString(s.peerIP), s.id))
	h.Accepted(c.l, client)
}
