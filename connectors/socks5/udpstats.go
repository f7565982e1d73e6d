package socks5

import "sync/atomic"

// UDPStats counts the work of a connector's UDP associations, on every
// loop. Only loops write the counters; any goroutine may read them.
type UDPStats struct {
	Associations atomic.Int64  // associations open now
	Opened       atomic.Uint64 // associations opened so far
	DatagramsIn  atomic.Uint64 // datagrams sent on from clients to destinations
	BytesIn      atomic.Uint64 // their data bytes (headers not counted)
	DatagramsOut atomic.Uint64 // datagrams sent back to clients
	BytesOut     atomic.Uint64 // their data bytes
	Fragments    atomic.Uint64 // datagrams from clients with FRAG ≠ 0, dropped
	BadHeaders   atomic.Uint64 // datagrams from clients with a bad header, dropped
	Foreign      atomic.Uint64 // datagrams from neither the client nor a destination, dropped
	NotAllowed   atomic.Uint64 // datagrams to a destination the rules refuse, dropped
	Dropped      atomic.Uint64 // datagrams dropped otherwise: bounds, names that failed, send errors
}

// UDPStats returns the counters of the connector's UDP associations.
func (c *In) UDPStats() *UDPStats { return &c.udp }
