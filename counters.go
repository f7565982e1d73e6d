package nproxy

import (
	"errors"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// ConnectError is a kind of failure to reach a server, as counted by
// ProxyStats.ConnectErrors.
type ConnectError int

// The kinds of connect errors.
const (
	ConnectRefused     ConnectError = iota // the server refused (RST to the SYN)
	ConnectTimeout                         // the connect or handshake deadline passed
	ConnectUnreachable                     // no route to the host or network
	ConnectResolve                         // the name did not resolve
	ConnectOther                           // anything else, handshake refusals included
	numConnectErrors
)

var connectErrorNames = [numConnectErrors]string{"refused", "timeout", "unreachable", "resolve", "other"}

// String names the kind as metrics label it.
func (k ConnectError) String() string { return connectErrorNames[k] }

// end is how a client's connection ends when its server fails with k.
func (k ConnectError) end() loop.End {
	switch k {
	case ConnectRefused:
		return loop.EndRefused
	case ConnectTimeout:
		return loop.EndTimeout
	}
	return loop.EndError
}

func connectErrorKind(err error) ConnectError {
	var dns *net.DNSError
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		return ConnectRefused
	case errors.Is(err, unix.ETIMEDOUT):
		return ConnectTimeout
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH):
		return ConnectUnreachable
	case errors.As(err, &dns):
		return ConnectResolve
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return ConnectTimeout
	}
	return ConnectOther
}

// proxyCounters are a proxy's metrics. They change once per connection or
// per failure, never per byte: the bytes of a connection are added when it
// closes, from its client socket's plain counters.
type proxyCounters struct {
	traffic       [4]atomic.Uint64 // in spliced, in copied, out spliced, out copied
	connectErrors [numConnectErrors]atomic.Uint64
	handshakes    [connectors.NumHandshakes]atomic.Uint64
	routesMu      sync.Mutex
	routes        map[string]*atomic.Uint64
}

func (c *proxyCounters) add(t loop.Traffic) {
	for i, n := range [4]uint64{t.InSpliced, t.InCopied, t.OutSpliced, t.OutCopied} {
		if n > 0 {
			c.traffic[i].Add(n)
		}
	}
}

// HandshakeFailed implements connectors.Observer.
func (p *Proxy) HandshakeFailed(kind connectors.Handshake) {
	if kind >= 0 && kind < connectors.NumHandshakes {
		p.counts.handshakes[kind].Add(1)
	}
}

// RouteCounter implements connectors.Observer.
func (p *Proxy) RouteCounter(route string) *atomic.Uint64 {
	c := &p.counts
	c.routesMu.Lock()
	defer c.routesMu.Unlock()
	if c.routes == nil {
		c.routes = map[string]*atomic.Uint64{}
	}
	r := c.routes[route]
	if r == nil {
		r = new(atomic.Uint64)
		c.routes[route] = r
	}
	return r
}

// ProxyStats is a snapshot of a proxy's counters, for metrics.
type ProxyStats struct {
	Opened, Closed    int64
	Traffic           loop.Traffic // of the connections closed so far
	ConnectErrors     [numConnectErrors]uint64
	HandshakeFailures [connectors.NumHandshakes]uint64
	Routes            []RouteCount // sorted by name
	FlowsActive       int64        // datagram flows, if the in connector keeps them
	FlowsOpened       uint64
	HasFlows          bool
}

// RouteCount is the number of decisions for one route (dual's probes,
// client_first, server_first).
type RouteCount struct {
	Route string
	Count uint64
}

// Stats returns a snapshot of the proxy's counters. Safe from any goroutine.
func (p *Proxy) Stats() ProxyStats {
	c := &p.counts
	st := ProxyStats{
		Opened: p.opened.Load(),
		Closed: p.closed.Load(),
		Traffic: loop.Traffic{
			InSpliced: c.traffic[0].Load(), InCopied: c.traffic[1].Load(),
			OutSpliced: c.traffic[2].Load(), OutCopied: c.traffic[3].Load(),
		},
	}
	for i := range c.connectErrors {
		st.ConnectErrors[i] = c.connectErrors[i].Load()
	}
	for i := range c.handshakes {
		st.HandshakeFailures[i] = c.handshakes[i].Load()
	}
	c.routesMu.Lock()
	for name, n := range c.routes {
		st.Routes = append(st.Routes, RouteCount{name, n.Load()})
	}
	c.routesMu.Unlock()
	sort.Slice(st.Routes, func(i, j int) bool { return st.Routes[i].Route < st.Routes[j].Route })
	if f, ok := p.in.(connectors.FlowCounter); ok {
		st.HasFlows = true
		st.FlowsActive, st.FlowsOpened = f.Flows()
	}
	return st
}

// ConnectErrorKinds lists the kinds of connect errors, in ProxyStats order.
func ConnectErrorKinds() []ConnectError {
	k := make([]ConnectError, numConnectErrors)
	for i := range k {
		k[i] = ConnectError(i)
	}
	return k
}
