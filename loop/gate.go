package loop

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Gate admits the clients of a set of listeners on one loop: it bounds the
// connections open at once (MaxConn: accept pauses at the bound and the
// kernel's backlog holds the next clients, as haproxy's maxconn does), and
// those from one address (MaxPerSource), and filters addresses (Allow,
// Deny). Its state is the loop's own, touched per accept and per close,
// never per byte. A Gate's Parent, if set, is a bound shared by several
// Gates (the global maxconn over every proxy). Set the fields before the
// first SetGate; a Gate belongs to one loop.
type Gate struct {
	// MaxConn bounds the clients open at once; 0 means no bound.
	MaxConn int
	// MaxPerSource bounds the clients open at once from one IP address;
	// past it a new client is closed at once (it cannot wait in a backlog
	// shared with other addresses). 0 means no bound.
	MaxPerSource int
	// Allow, if not empty, admits only clients in one of its prefixes.
	Allow []netip.Prefix
	// Deny refuses clients in one of its prefixes, even if allowed.
	Deny []netip.Prefix
	// Parent, if set, must admit the client too.
	Parent *Gate

	open      int
	bySource  map[netip.Addr]int
	listeners []*Socket
	paused    bool
}

// Open returns the clients open through the gate.
func (g *Gate) Open() int { return g.open }

// SetGate puts listener (a socket from Listen) behind g.
func (l *Loop) SetGate(s *Socket, g *Gate) {
	ln, ok := s.handler.(*listener)
	if !ok {
		return
	}
	ln.gate = g
	for p := g; p != nil; p = p.Parent {
		p.listeners = append(p.listeners, s)
	}
}

// Listeners returns the loop's open listeners.
func (l *Loop) Listeners() []*Socket {
	var out []*Socket
	for _, s := range l.sockets {
		if s != nil && !s.closed {
			if _, ok := s.handler.(*listener); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// full says whether the gate, or one above it, holds as many clients as
// it may.
func (g *Gate) full() bool {
	for p := g; p != nil; p = p.Parent {
		if p.MaxConn > 0 && p.open >= p.MaxConn {
			return true
		}
	}
	return false
}

func (g *Gate) needsSource() bool {
	return g.MaxPerSource > 0 || len(g.Allow) > 0 || len(g.Deny) > 0
}

// pause stops every listener of a full gate: their clients wait in the
// kernel's backlog, costing the loop nothing.
func (g *Gate) pause(l *Loop) {
	for p := g; p != nil; p = p.Parent {
		if p.MaxConn > 0 && p.open >= p.MaxConn && !p.paused {
			p.paused = true
			for _, s := range p.listeners {
				if !s.closed {
					l.UnwatchReader(s)
				}
			}
		}
	}
}

// admit decides on a client just accepted: true if it may stay (it is
// then counted until it closes).
func (g *Gate) admit(c *Socket) bool {
	var src netip.Addr
	for p := g; p != nil; p = p.Parent {
		if !p.needsSource() {
			continue
		}
		if !src.IsValid() {
			src = peerAddr(c.fd)
		}
		if !p.allows(src) {
			c.loop.Warn("deny", "client "+src.String()+" refused by the allow/deny lists")
			return false
		}
		if p.MaxPerSource > 0 && p.bySource[src] >= p.MaxPerSource {
			c.loop.Warn("per-source "+src.String(), "client "+src.String()+" refused: max_per_source reached")
			return false
		}
	}
	for p := g; p != nil; p = p.Parent {
		p.open++
		if p.MaxPerSource > 0 {
			if p.bySource == nil {
				p.bySource = map[netip.Addr]int{}
			}
			p.bySource[src]++
		}
	}
	c.gate = g
	if src.IsValid() {
		c.extra().source = src
	}
	return true
}

func (g *Gate) allows(a netip.Addr) bool {
	for _, p := range g.Deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(g.Allow) == 0 {
		return true
	}
	for _, p := range g.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// leave uncounts a closing client, and wakes the paused listeners once
// there is room again.
func (g *Gate) leave(c *Socket) {
	for p := g; p != nil; p = p.Parent {
		p.open--
		if p.MaxPerSource > 0 {
			if p.bySource[c.ext.source]--; p.bySource[c.ext.source] <= 0 {
				delete(p.bySource, c.ext.source)
			}
		}
	}
	for p := g; p != nil; p = p.Parent {
		if p.paused && p.open < p.MaxConn {
			p.paused = false
			for _, s := range p.listeners {
				// A listener resting after EMFILE (see pause) may try once
				// early: it rests again if fds are still short.
				if ln := s.handler.(*listener); !s.closed && !ln.gate.full() {
					c.loop.WatchReader(s)
				}
			}
		}
	}
}

// peerAddr is the client's IP address, read once per accept and only for
// gates that need it: accept itself skips the address (see accept).
func peerAddr(fd int) netip.Addr {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.Addr{}
	}
	ap, _ := addrPortOf(sa)
	return ap.Addr().Unmap()
}

// IdleTimeout closes s and its peer once no byte was read from either for
// d: one timer per connection, re-armed once per d from the time of the
// last read (recorded per read as a plain store of the pass's clock), not
// reset per byte.
func (l *Loop) IdleTimeout(s *Socket, d time.Duration) { l.idleCheck(s, d, d) }

// idleCheck runs after wait, and checks the idleness against d.
func (l *Loop) idleCheck(s *Socket, d, wait time.Duration) {
	s.SetTimer(wait, func() {
		last := s.lastRead
		if s.Peer != nil {
			last = max(last, s.Peer.lastRead)
		}
		if left := d - time.Duration(l.now()-last); left > 0 {
			l.idleCheck(s, d, left)
			return
		}
		s.SetEnd(EndTimeout)
		if s.Peer != nil {
			s.Peer.SetEnd(EndTimeout)
			l.Close(s.Peer)
		}
		l.Close(s)
	})
}
