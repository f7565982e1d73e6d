package udp

import "sync/atomic"

// Stats counts the work of one flow table: one listening socket on one
// loop. Only its loop writes the counters; any goroutine may read them (a
// metrics scrape), and none is ever reset.
type Stats struct {
	FlowsOpened  atomic.Uint64 // flows opened by a new client address
	FlowsClosed  atomic.Uint64 // flows ended, evicted ones included
	FlowsEvicted atomic.Uint64 // flows ended to make room (MaxFlows)
	DatagramsIn  atomic.Uint64 // datagrams received from clients
	BytesIn      atomic.Uint64 // their bytes
	DatagramsOut atomic.Uint64 // datagrams sent back to clients
	BytesOut     atomic.Uint64 // their bytes
	Dropped      atomic.Uint64 // datagrams dropped, either way: too long, or queued past the bound
}

// Counts is a snapshot of Stats, summed over flow tables.
type Counts struct {
	FlowsOpened, FlowsClosed, FlowsEvicted uint64
	DatagramsIn, BytesIn                   uint64
	DatagramsOut, BytesOut                 uint64
	Dropped                                uint64
}

// add adds the current values of s to c.
func (c *Counts) add(s *Stats) {
	c.FlowsOpened += s.FlowsOpened.Load()
	c.FlowsClosed += s.FlowsClosed.Load()
	c.FlowsEvicted += s.FlowsEvicted.Load()
	c.DatagramsIn += s.DatagramsIn.Load()
	c.BytesIn += s.BytesIn.Load()
	c.DatagramsOut += s.DatagramsOut.Load()
	c.BytesOut += s.BytesOut.Load()
	c.Dropped += s.Dropped.Load()
}

// Flows implements connectors.FlowCounter, so that metrics report the
// connector's flows: those open now, and those opened so far.
func (c *In) Flows() (active int64, opened uint64) {
	n := c.Counts()
	return int64(n.FlowsOpened - n.FlowsClosed), n.FlowsOpened
}
