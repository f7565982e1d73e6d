package dnstunnel

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/internal/tunnel"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Timings of the client (see docs/dns.md).
const (
	minRetry   = 30 * time.Millisecond // the retry timeout follows the round trip, from here
	firstRetry = 500 * time.Millisecond
	lastRetry  = 4 * time.Second
	maxRetries = 20
	firstPoll  = 10 * time.Millisecond
	lastPoll   = 500 * time.Millisecond
)

// Out opens a tunnel for each client: queries under Domain, sent to
// Resolver, reach the In that is authoritative for Domain.
type Out struct {
	// Domain is the zone the far side's In answers for.
	Domain string `param:"domain,required"`
	// Key authenticates every query and answer; the In's key.
	Key string `param:"key,required"`
	// Resolver is the DNS server to ask, "address" or "address:port" (an
	// IP address: a resolver named by a name could not be found); empty
	// means the first nameserver of /etc/resolv.conf.
	Resolver string `param:"resolver"`
	// Hook, if set, sees the data that comes out of the tunnel.
	Hook loop.Hook
	// Stats counts the answers dropped.
	Stats Stats
}

// Validate implements connectors.Validator.
func (o *Out) Validate() error {
	if _, ok := dns.IsDomainName(o.Domain); !ok || o.Domain == "" {
		return fmt.Errorf("domain %q is not a domain name", o.Domain)
	}
	if maxUp(dns.Fqdn(o.Domain)) < 16 {
		return fmt.Errorf("domain %q is too long to leave room for data", o.Domain)
	}
	if o.Resolver != "" {
		if _, err := parseResolver(o.Resolver); err != nil {
			return err
		}
	}
	return nil
}

func parseResolver(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("resolver %q: want an IP address, with an optional :port", s)
}

// systemResolver reads the first nameserver of /etc/resolv.conf.
func systemResolver() (netip.AddrPort, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			return parseResolver(f[1])
		}
	}
	return netip.AddrPort{}, errors.New("no nameserver in /etc/resolv.conf")
}

// Open implements connectors.Out: the tunnel is relayed once the server
// has answered the start.
func (o *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	ap, err := parseResolver(o.Resolver)
	if o.Resolver == "" {
		ap, err = systemResolver()
	}
	if err != nil {
		h.Failed(l, client, fmt.Errorf("dns: %w", err))
		return
	}
	fd, err := udpSocket(ap, false)
	if err != nil {
		h.Failed(l, client, fmt.Errorf("dns: resolver %s: %w", ap, err))
		return
	}
	c := &clientSession{o: o, l: l, h: h, client: client, id: rand.Uint32(), key: []byte(o.Key),
		domain: strings.ToLower(dns.Fqdn(o.Domain)), maxDown: defaultMaxDown, retry: firstRetry, poll: firstPoll}
	c.maxUp = maxUp(c.domain)
	c.udp, _ = l.Adopt(fd, c)
	c.udp.SetNick("dns resolver " + ap.String())
	l.WatchReader(c.udp)
	c.send()
}

// clientSession is one tunnel on the client side: one query outstanding at
// a time, on a UDP socket of its own towards the resolver.
type clientSession struct {
	o      *Out
	l      *loop.Loop
	h      connectors.Handler
	client *loop.Socket // until connected
	udp    *loop.Socket
	st     stream
	id     uint32
	key    []byte
	domain string
	maxUp  int

	started  bool
	upAcked  uint32 // upstream bytes the server took
	finAcked bool   // the server took our FIN
	downRecv uint32 // downstream bytes received
	closing  bool

	q       query // the query outstanding
	qName   string
	qID     uint16
	waiting bool
	retries int
	retry   time.Duration // this query's retry timeout
	srtt    time.Duration // smoothed round trip, as TCP keeps it (RFC 6298)
	sentAt  time.Time
	poll    time.Duration
	maxDown uint16
	buf     [maxMessage]byte
	ended   bool
}

// send sends the next query: start, data (possibly none, to poll), close.
func (c *clientSession) send() {
	c.q = query{session: c.id, up: c.upAcked, down: c.downRecv, max: c.maxDown,
		nonce: rand.Uint32(), time: uint32(time.Now().Unix())}
	switch {
	case !c.started:
		c.q.kind = kindStart
	case c.closing:
		c.q.kind = kindClose
	default:
		c.q.kind = kindData
		c.q.data = c.st.in[:min(len(c.st.in), c.maxUp)]
		if c.st.inEOF && len(c.q.data) == len(c.st.in) {
			c.q.kind |= kindFIN
		}
	}
	c.qName = encodeQuery(c.key, c.domain, &c.q)
	m := newQueryMsg(c.qName)
	c.qID = m.Id
	b, err := m.PackBuffer(c.buf[:])
	if err == nil {
		_, err = unix.Write(c.udp.Fd(), b)
	}
	if err != nil && err != unix.EAGAIN {
		c.l.Logger().Debug("dns: sending a query", "err", err)
	}
	c.waiting = true
	c.sentAt = time.Now()
	c.udp.SetTimer(c.retry, c.timeout)
}

// timeout resends a query unanswered, or polls.
func (c *clientSession) timeout() {
	if !c.waiting {
		c.send()
		return
	}
	c.retries++
	if c.retries > maxRetries {
		c.fail(errors.New("dns: no answer from the tunnel's server"))
		return
	}
	c.retry = min(2*c.retry, lastRetry)
	c.send()
}

// measure updates the round-trip estimate with an answer to a query sent
// once (Karn's rule: a retried query's answer says nothing), and the retry
// timeout with it: a lost query or answer costs a few round trips, not half
// a second.
func (c *clientSession) measure(rtt time.Duration) {
	if c.srtt == 0 {
		c.srtt = rtt
	} else {
		c.srtt += (rtt - c.srtt) / 8
	}
	c.retry = min(max(3*c.srtt+10*time.Millisecond, minRetry), lastRetry)
}

// Readable reads the resolver's answers.
func (c *clientSession) Readable(s *loop.Socket) {
	if s != c.udp {
		c.readLocal()
		return
	}
	for i := 0; i < readBurst && !c.ended; i++ {
		n, err := unix.Read(s.Fd(), c.buf[:])
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err != nil {
			// ICMP errors (the resolver's port closed) come back here:
			// the retry timer deals with them.
			return
		}
		c.receive(c.buf[:n])
	}
}

// Writable writes on what came from the server.
func (c *clientSession) Writable(s *loop.Socket) {
	if s == c.udp {
		return
	}
	if !c.st.flushOut() {
		c.fail(errors.New("dns: local stream gone"))
		return
	}
	c.next(false)
}

func (c *clientSession) readLocal() {
	if c.st.readIn() && !c.waiting {
		c.send() // new data: no need to wait for the poll
	}
}

// receive handles one datagram from the resolver.
func (c *clientSession) receive(b []byte) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		c.o.Stats.Malformed.Add(1)
		return
	}
	if !c.waiting || m.Id != c.qID || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, c.qName) {
		c.o.Stats.Unknown.Add(1)
		return
	}
	if m.Truncated {
		c.o.Stats.Truncated.Add(1)
		if c.maxDown > truncatedDown {
			c.maxDown = truncatedDown
			c.send()
		}
		return // still too large: the retry timer paces what follows
	}
	var txt *dns.TXT
	for _, rr := range m.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			txt = t
		}
	}
	if m.Rcode != dns.RcodeSuccess || txt == nil {
		c.o.Stats.Malformed.Add(1)
		return // the retry timer asks again
	}
	a, err := decodeAnswer(c.key, &c.q, txt.Txt)
	if err != nil {
		c.o.Stats.BadMAC.Add(1)
		return
	}
	if c.retries == 0 {
		c.measure(time.Since(c.sentAt))
	}
	c.waiting, c.retries = false, 0
	c.apply(&a)
}

// apply takes an answer to the outstanding query.
func (c *clientSession) apply(a *answer) {
	if a.flags&flagReset != 0 {
		c.fail(errors.New("dns: the server does not know the session"))
		return
	}
	kind := c.q.kind &^ kindFIN
	switch {
	case kind == kindClose:
		c.end()
		return
	case kind == kindStart:
		c.started = true
		c.connect()
		if c.st.sock == nil { // the client left meanwhile
			if !c.ended {
				c.send()
			}
			return
		}
	}
	progress := len(a.data) > 0
	if d := a.up - c.upAcked; d > 0 && int(d) <= len(c.st.in) {
		c.upAcked = a.up
		c.st.acked(int(d))
		progress = true
	}
	if c.q.kind&kindFIN != 0 && a.up == c.q.up+uint32(len(c.q.data)) {
		c.finAcked = true
	}
	if a.down == c.downRecv && !c.st.outFIN {
		c.st.out = append(c.st.out, a.data...)
		c.downRecv += uint32(len(a.data))
		c.st.outFIN = a.flags&flagFIN != 0
		if !c.st.flushOut() {
			c.fail(errors.New("dns: local stream gone"))
			return
		}
	}
	c.next(progress)
}

// next sends the next query now while data flows, after a growing poll
// delay while it does not, and not while the local stream cannot take what
// came.
func (c *clientSession) next(progress bool) {
	if c.waiting || c.ended {
		return
	}
	if len(c.st.out) >= maxPending {
		return // Writable calls again once it drains
	}
	if c.finAcked && c.st.outFIN && len(c.st.out) == 0 {
		c.closing = true
	}
	unsent := len(c.st.in) > len(c.q.data) || c.st.inEOF && !c.finAcked && c.q.kind&kindFIN == 0
	if progress || unsent || c.closing {
		c.poll = firstPoll
		c.send()
		return
	}
	c.udp.SetTimer(c.poll, c.timeout)
	c.poll = min(2*c.poll, lastPoll)
}

// connect hands the tunnel to the relay once the server has the session.
func (c *clientSession) connect() {
	if c.client.Closed() {
		c.client = nil
		c.closing = true // tell the server, which opened the session already
		return
	}
	relaySide, local, err := tunnel.Pair(c.l, c)
	if err != nil {
		c.fail(err)
		return
	}
	c.st.sock = local
	relaySide.Connector, relaySide.Hook = c.o, c.o.Hook
	relaySide.SetNick(fmt.Sprintf("dns session %08x", c.id))
	client := c.client
	c.client = nil
	c.h.Connected(c.l, client, relaySide)
}

// fail ends the session on an error: before the relay started, the proxy
// is told; after, the local stream just ends.
func (c *clientSession) fail(err error) {
	if c.client != nil {
		client := c.client
		c.client = nil
		c.end()
		c.h.Failed(c.l, client, err)
		return
	}
	c.l.Logger().Info("dns: tunnel ended", "session", fmt.Sprintf("%08x", c.id), "err", err)
	c.end()
}

func (c *clientSession) end() {
	if c.ended {
		return
	}
	c.ended = true
	c.l.Close(c.udp)
	if c.st.sock != nil {
		c.l.Close(c.st.sock)
	}
}
