package nproxy

import (
	"net/netip"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// Limits bound the clients of one proxy (Proxy.SetLimits) or of every
// proxy of a Server together (Options.Limits). The zero value bounds
// nothing. Each loop enforces its share with state of its own (see
// loop.Gate): MaxConn and MaxPerSource are divided between the loops,
// rounded up, as the kernel spreads clients evenly over SO_REUSEPORT
// listeners; with one loop (the default) they are exact.
type Limits struct {
	// MaxConn bounds the clients relayed at once: at the bound accept
	// pauses and the kernel's backlog holds the next clients until one
	// leaves (haproxy's maxconn). In Options.Limits, 0 means what the
	// process's fd limit allows (see defaultMaxConn).
	MaxConn int
	// MaxPerSource bounds the clients at once from one IP address; past
	// it a new client is closed at once.
	MaxPerSource int
	// IdleTimeout closes a relayed connection after this long without a
	// byte either way; 0 means never.
	IdleTimeout time.Duration
	// Allow, if not empty, admits only clients in one of its prefixes.
	Allow []netip.Prefix
	// Deny refuses clients in one of its prefixes.
	Deny []netip.Prefix
}

// SetLimits sets the proxy's limits for its next run.
func (p *Proxy) SetLimits(l Limits) { p.limits = l }

// gate is one loop's share of the limits, nil when they admit everyone
// and have no parent to answer to.
func (lim Limits) gate(loops int, parent *loop.Gate) *loop.Gate {
	if lim.MaxConn == 0 && lim.MaxPerSource == 0 && len(lim.Allow) == 0 && len(lim.Deny) == 0 {
		if parent == nil {
			return nil
		}
		return &loop.Gate{Parent: parent}
	}
	return &loop.Gate{
		MaxConn:      share(lim.MaxConn, loops),
		MaxPerSource: share(lim.MaxPerSource, loops),
		Allow:        lim.Allow,
		Deny:         lim.Deny,
		Parent:       parent,
	}
}

func share(n, loops int) int { return (n + loops - 1) / loops }

// listenGated opens p's listeners on l behind their gate: the listeners
// its in connector opened are the loop's new ones.
func (p *Proxy) listenGated(l *loop.Loop, i int, parent *loop.Gate) error {
	before := map[*loop.Socket]bool{}
	for _, s := range l.Listeners() {
		before[s] = true
	}
	if err := p.in.Listen(l, p); err != nil {
		return err
	}
	if s, ok := p.out.(connectors.Starter); ok {
		s.Start(l)
	}
	g := p.limits.gate(len(p.listening), parent)
	for _, s := range l.Listeners() {
		if !before[s] {
			p.listening[i] = append(p.listening[i], s)
			if g != nil {
				l.SetGate(s, g)
			}
		}
	}
	return nil
}

// idleTimeout is the proxy's own, or else the Server's (none for a proxy
// driven on a loop of its own, outside any Server).
func (p *Proxy) idleTimeout() time.Duration {
	if d := p.current().limits.IdleTimeout; d > 0 {
		return d
	}
	if p.run == nil {
		return 0
	}
	return p.run.limits.IdleTimeout
}
