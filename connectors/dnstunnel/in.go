package dnstunnel

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/internal/tunnel"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// DefaultMaxSessions bounds an In's sessions when MaxSessions is 0.
const DefaultMaxSessions = 64

const (
	serverIdle   = 60 * time.Second
	clockSkew    = 60 * time.Second
	replayWindow = 2 * serverIdle
	readBurst    = 64
)

// In is the authoritative DNS server for Domain on UDP Host:Port: each
// tunnel a client opens becomes a client of the proxy, relayed to its out
// connector.
type In struct {
	// Host is the address to listen on: localhost by default, "*" for
	// every address.
	Host string `param:"host"`
	// Port is the UDP port (53 for a real delegation).
	Port int `param:"port,required,port"`
	// Domain is the zone the server answers for.
	Domain string `param:"domain,required"`
	// Key authenticates every query and answer (HMAC-SHA256).
	Key string `param:"key,required"`
	// MaxSessions bounds the tunnels open at once; 0 means
	// DefaultMaxSessions.
	MaxSessions int `param:"max_sessions"`
	// Hook, if set, sees the data that comes out of the tunnels.
	Hook loop.Hook
	// Stats counts what was dropped.
	Stats Stats

	listening atomic.Bool
	recent    tunnel.Recent[uint32] // ended sessions' ids, against replays
}

// Stats counts the messages a dns connector dropped, by reason. The
// counters may be read from any goroutine.
type Stats struct {
	// Malformed counts messages that do not unpack, and names that do not
	// decode.
	Malformed atomic.Uint64
	// BadMAC counts queries or answers that fail authentication: a wrong
	// key, or forgery.
	BadMAC atomic.Uint64
	// Refused counts session starts turned away: out of the clock window,
	// a session id recently ended (a replay), too many sessions.
	Refused atomic.Uint64
	// Unknown counts queries for sessions that do not exist and answers
	// that match no outstanding query.
	Unknown atomic.Uint64
	// Truncated counts answers that came back with TC set (a resolver
	// with a smaller UDP size): the client then asks for less data.
	Truncated atomic.Uint64
}

// Validate implements connectors.Validator.
func (in *In) Validate() error {
	if _, ok := dns.IsDomainName(in.Domain); !ok || in.Domain == "" {
		return fmt.Errorf("domain %q is not a domain name", in.Domain)
	}
	if maxUp(dns.Fqdn(in.Domain)) < 16 {
		return fmt.Errorf("domain %q is too long to leave room for data", in.Domain)
	}
	if in.MaxSessions < 0 {
		return fmt.Errorf("max_sessions %d is negative", in.MaxSessions)
	}
	return nil
}

// Listen implements connectors.In. Only the first loop listens: a session's
// queries must all reach the loop that holds it.
func (in *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if in.listening.Swap(true) {
		return nil
	}
	host := in.Host
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	case "*":
		host = "::" // IPv4 too: Linux's IPV6_V6ONLY is off by default
	}
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, fmt.Sprint(in.Port)))
	if err != nil {
		in.listening.Store(false)
		return fmt.Errorf("can't listen on %s port %d: %w", in.Host, in.Port, err)
	}
	fd, err := udpSocket(ua.AddrPort(), true)
	if err != nil {
		in.listening.Store(false)
		return fmt.Errorf("can't listen on %s port %d (udp): %w", in.Host, in.Port, err)
	}
	in.recent.Window = replayWindow
	srv := &server{in: in, l: l, h: h, domain: strings.ToLower(dns.Fqdn(in.Domain)), key: []byte(in.Key),
		sessions: map[uint32]*serverSession{}}
	s, _ := l.Adopt(fd, srv)
	s.SetNick("dns server")
	l.WatchReader(s)
	srv.sweep = l.AfterFunc(time.Second, srv.expire)
	return nil
}

// udpSocket opens a non-blocking UDP socket bound to (listen) or connected
// to ap.
func udpSocket(ap netip.AddrPort, listen bool) (int, error) {
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if ap.Addr().Unmap().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if listen {
		err = unix.Bind(fd, sa)
	} else {
		err = unix.Connect(fd, sa)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (in *In) maxSessions() int {
	if in.MaxSessions == 0 {
		return DefaultMaxSessions
	}
	return in.MaxSessions
}

// server is an In's UDP socket on its loop.
type server struct {
	in       *In
	l        *loop.Loop
	h        connectors.Handler
	domain   string
	key      []byte
	sessions map[uint32]*serverSession
	sweep    *loop.Timer
	buf      [maxMessage]byte
}

// Readable answers the queries waiting, one datagram at a time.
func (srv *server) Readable(s *loop.Socket) {
	for i := 0; i < readBurst; i++ {
		n, from, err := unix.Recvfrom(s.Fd(), srv.buf[:], 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err != nil {
			srv.l.Logger().Debug("dns: reading the server socket", "err", err)
			return
		}
		if r := srv.handle(srv.buf[:n]); r != nil {
			unix.Sendto(s.Fd(), r, 0, from)
		}
	}
}

// Writable is not asked for: an answer the socket cannot take is lost like
// any datagram, and the client asks again.
func (srv *server) Writable(*loop.Socket) {}

// handle answers one DNS message, or drops it (nil).
func (srv *server) handle(b []byte) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil || m.Response || m.Opcode != dns.OpcodeQuery || len(m.Question) != 1 {
		srv.in.Stats.Malformed.Add(1)
		return nil
	}
	name := m.Question[0].Name
	q, err := decodeQuery(srv.key, srv.domain, name)
	switch {
	case err == errNotOurs || err == nil && m.Question[0].Qtype != dns.TypeTXT:
		return reply(m, dns.RcodeRefused, nil)
	case err == errMAC:
		srv.in.Stats.BadMAC.Add(1)
		return nil
	case err != nil:
		srv.in.Stats.Malformed.Add(1)
		return nil
	}
	a, ok := srv.serve(&q)
	if !ok {
		return nil
	}
	return srv.answer(m, &q, &a)
}

// answer packs the TXT answer, its data shrunk until the message fits the
// query's UDP size.
func (srv *server) answer(m *dns.Msg, q *query, a *answer) []byte {
	size := 512
	if opt := m.IsEdns0(); opt != nil {
		size = max(512, int(opt.UDPSize()))
	}
	for {
		txt := &dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: encodeAnswer(srv.key, q, a)}
		r := reply(m, dns.RcodeSuccess, []dns.RR{txt})
		if len(r) <= size || len(a.data) == 0 {
			return r
		}
		a.data = a.data[:max(0, len(a.data)-(len(r)-size)-8)]
		a.flags &^= flagFIN // the FIN goes with the last byte
	}
}

func reply(m *dns.Msg, rcode int, answer []dns.RR) []byte {
	r := new(dns.Msg)
	r.SetRcode(m, rcode)
	r.Authoritative = true
	// The answer's owner is the question's long name: a pointer to it saves
	// some 250 bytes for data.
	r.Compress = true
	r.Answer = answer
	if opt := m.IsEdns0(); opt != nil {
		r.SetEdns0(ednsSize, false)
	}
	b, err := r.Pack()
	if err != nil {
		return nil
	}
	return b
}

// serve runs a query against its session and says what to answer; false
// drops the query.
func (srv *server) serve(q *query) (answer, bool) {
	s := srv.sessions[q.session]
	switch q.kind &^ kindFIN {
	case kindStart:
		if s != nil {
			return answer{}, true // a copy of the start
		}
		if !srv.admit(q) {
			return answer{}, false
		}
		if s = srv.open(q.session); s == nil {
			return answer{}, false
		}
		return answer{}, true
	case kindData, kindClose:
		if s == nil {
			srv.in.Stats.Unknown.Add(1)
			return answer{flags: flagReset, down: q.down}, true
		}
		s.lastSeen = time.Now()
		if q.kind&^kindFIN == kindClose {
			s.end()
			return answer{up: s.upRecv, down: q.down}, true
		}
		return s.serve(q), true
	}
	srv.in.Stats.Malformed.Add(1)
	return answer{}, false
}

// admit checks a new session's start: its clock, its id, the limit.
func (srv *server) admit(q *query) bool {
	skew := time.Since(time.Unix(int64(q.time), 0))
	why := ""
	switch {
	case math.Abs(float64(skew)) > float64(clockSkew):
		why = "clock out of window (a replay?)"
	case srv.in.recent.Has(q.session):
		why = "session id recently used (a replay?)"
	case len(srv.sessions) >= srv.in.maxSessions():
		why = "too many sessions"
	default:
		return true
	}
	srv.in.Stats.Refused.Add(1)
	srv.l.Logger().Info("dns: session start refused", "session", q.session, "why", why)
	return false
}

func (srv *server) open(id uint32) *serverSession {
	s := &serverSession{srv: srv, id: id, lastSeen: time.Now()}
	relaySide, local, err := tunnel.Pair(srv.l, s)
	if err != nil {
		srv.l.Logger().Error("dns: socketpair", "err", err)
		return nil
	}
	s.st.sock = local
	srv.sessions[id] = s
	relaySide.Connector, relaySide.Hook = srv.in, srv.in.Hook
	relaySide.SetNick(fmt.Sprintf("dns session %08x", id))
	srv.h.Accepted(srv.l, relaySide)
	return s
}

// expire ends sessions that have been silent too long.
func (srv *server) expire() {
	now := time.Now()
	for _, s := range srv.sessions {
		if now.Sub(s.lastSeen) > serverIdle {
			srv.l.Logger().Info("dns: session timed out", "session", s.id)
			s.end()
		}
	}
	srv.sweep = srv.l.AfterFunc(time.Second, srv.expire)
}

// serverSession is one tunnel on the server.
type serverSession struct {
	srv       *server
	id        uint32
	st        stream
	upRecv    uint32 // upstream bytes taken
	downAcked uint32 // downstream offset the client has
	lastSeen  time.Time
}

// serve takes a data query's bytes past what the session has, its ack, and
// answers with the data from the offset it acknowledges.
func (s *serverSession) serve(q *query) answer {
	end := q.up + uint32(len(q.data))
	if q.up <= s.upRecv && end >= s.upRecv && !s.st.outFIN {
		fresh := q.data[s.upRecv-q.up:]
		take := min(len(fresh), maxPending-len(s.st.out))
		s.st.out = append(s.st.out, fresh[:take]...)
		s.upRecv += uint32(take)
		if take == len(fresh) && q.kind&kindFIN != 0 {
			s.st.outFIN = true
		}
		if !s.st.flushOut() {
			s.end()
		}
	}
	if d := q.down - s.downAcked; d > 0 && int(d) <= len(s.st.in) {
		s.downAcked = q.down
		s.st.acked(int(d))
	}
	a := answer{up: s.upRecv, down: q.down}
	if q.down == s.downAcked {
		a.data = s.st.in[:min(len(s.st.in), int(q.max))]
		if s.st.inEOF && len(a.data) == len(s.st.in) {
			a.flags |= flagFIN
		}
	}
	return a
}

// Readable reads the local stream for the client's next queries.
func (s *serverSession) Readable(*loop.Socket) { s.st.readIn() }

// Writable writes on what the client sent.
func (s *serverSession) Writable(*loop.Socket) {
	if !s.st.flushOut() {
		s.end()
	}
}

func (s *serverSession) end() {
	if s.srv.sessions[s.id] != s {
		return
	}
	delete(s.srv.sessions, s.id)
	s.srv.in.recent.Add(s.id)
	s.srv.l.Close(s.st.sock)
}
