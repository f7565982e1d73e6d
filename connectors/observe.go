package connectors

import "sync/atomic"

// Handshake names a protocol exchange that runs before the relay and may
// fail: what a handshake-failure counter is kept by.
type Handshake int

// The handshakes nproxy counts failures of.
const (
	HandshakeTLS     Handshake = iota // a TLS handshake, either side
	HandshakeCONNECT                  // an HTTP CONNECT request through a web proxy, or from a client
	HandshakePROXY                    // a PROXY protocol header
	HandshakeSOCKS                    // a SOCKS negotiation
	NumHandshakes                     // the number of kinds, for arrays of counters
)

var handshakeNames = [NumHandshakes]string{"tls", "connect", "proxy", "socks"}

// String names the handshake as metrics label it.
func (h Handshake) String() string {
	if h >= 0 && h < NumHandshakes {
		return handshakeNames[h]
	}
	return "?"
}

// Observer is implemented by handlers that keep metrics (nproxy's Proxy).
// Connectors reach it through HandshakeFailed and RouteCounter, so that a
// handler without metrics costs them nothing.
type Observer interface {
	// HandshakeFailed counts a failed handshake of kind.
	HandshakeFailed(kind Handshake)
	// RouteCounter returns the counter of the decisions for route, the same
	// one for the same name. It takes a lock: call it when listening, and
	// bump the counter (atomically, without a lookup) per decision.
	RouteCounter(route string) *atomic.Uint64
}

// HandshakeFailed counts a failed handshake of kind with h, if h keeps
// metrics.
func HandshakeFailed(h Handler, kind Handshake) {
	if o, ok := h.(Observer); ok {
		o.HandshakeFailed(kind)
	}
}

// RouteCounter returns h's counter of decisions for route, or a counter no
// one reads if h keeps no metrics.
func RouteCounter(h Handler, route string) *atomic.Uint64 {
	if o, ok := h.(Observer); ok {
		return o.RouteCounter(route)
	}
	return new(atomic.Uint64)
}

// FlowCounter is implemented by in connectors that keep datagram flows
// (udp): metrics read it on scrape. Both counts must be safe to read from
// any goroutine (atomics kept by the connector).
type FlowCounter interface {
	// Flows returns the flows open now and the flows opened so far.
	Flows() (active int64, opened uint64)
}
