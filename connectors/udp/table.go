package udp

import (
	"net/netip"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg(2) takes from the listening
// socket; batchRounds bounds the batches per readiness event, so that a
// flood on one listener cannot starve the loop's other sockets.
const (
	batchSize   = 16
	batchRounds = 4
)

// table is the flow table of one listening socket on one loop, and the
// handler of that socket. It maps client addresses to flows, and keeps them
// in least-recently-used order for eviction.
type table struct {
	in      *In
	l       *loop.Loop
	h       connectors.Handler
	ln      *loop.Socket
	batch   *loop.DatagramBatch
	flows   map[netip.AddrPort]*flow
	lru     flow    // sentinel of the LRU ring: lru.next is the most recent
	blocked []*flow // flows whose replies wait for ln to be writable
	stats   *Stats
}

func newTable(in *In, l *loop.Loop, h connectors.Handler) *table {
	t := &table{
		in: in, l: l, h: h,
		// One byte more than the longest datagram accepted, so that a
		// longer one shows as such rather than as a truncated good one.
		batch: loop.NewDatagramBatch(batchSize, min(in.maxDatagram()+1, loop.MaxDatagram+1)),
		flows: map[netip.AddrPort]*flow{},
		stats: new(Stats),
	}
	t.lru.next, t.lru.prev = &t.lru, &t.lru
	return t
}

// attach makes ln the table's listening socket; closing it ends every flow.
func (t *table) attach(ln *loop.Socket) {
	t.ln = ln
	ln.Closer = t
}

// Readable receives datagrams in batches and hands each to its flow.
func (t *table) Readable(ln *loop.Socket) {
	for round := 0; round < batchRounds && !ln.Closed(); round++ {
		n, err := t.batch.Recv(ln.Fd())
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR {
				t.l.Logger().Error("udp receive failed", "listener", ln.Nick(), "err", err)
			}
			return
		}
		for i := 0; i < n; i++ {
			t.receive(t.batch.Datagram(i))
		}
		if n < batchSize {
			return // drained: another recvmmsg would only say EAGAIN
		}
	}
}

func (t *table) receive(data []byte, from *loop.PacketAddr, truncated bool) {
	if truncated || len(data) > t.in.maxDatagram() {
		t.stats.Dropped.Add(1)
		t.l.Logger().Debug("datagram too long, dropped", "client", from.AddrPort(), "size", len(data), "max", t.in.maxDatagram())
		return
	}
	key := from.AddrPort()
	f := t.flows[key]
	if f == nil {
		if f = t.open(key, from); f == nil {
			return
		}
	}
	t.stats.DatagramsIn.Add(1)
	t.stats.BytesIn.Add(uint64(len(data)))
	f.touch()
	f.deliver(data)
}

// open makes the flow of a new client address, evicting the least recently
// used flow if the table is full, and hands it to the proxy as a new
// client. It returns nil if the flow ended at once.
func (t *table) open(key netip.AddrPort, from *loop.PacketAddr) *flow {
	if len(t.flows) >= t.in.maxFlows() {
		t.evict()
	}
	f := &flow{t: t, addr: *from, key: key}
	c := t.l.Virtual(f)
	c.SetNick(key.String())
	c.Connector, c.Hook = t.in, t.in.Hook
	c.SetDatagram(loop.DatagramOptions{Max: t.in.maxDatagram(), Dropped: &t.stats.Dropped})
	f.client = c
	t.flows[key] = f
	t.pushFront(f)
	t.stats.FlowsOpened.Add(1)
	f.touch()
	c.SetTimer(t.in.timeout(), f.expire)
	t.h.Accepted(t.l, c)
	if c.Closed() {
		return nil
	}
	return f
}

// evict ends the least recently used flow to make room for a new one.
func (t *table) evict() {
	f := t.lru.prev
	t.stats.FlowsEvicted.Add(1)
	t.l.Logger().Debug("udp flow evicted", "client", f.key, "max_flows", t.in.maxFlows())
	f.end()
}

// remove forgets a flow whose client socket is closing.
func (t *table) remove(f *flow) {
	delete(t.flows, f.key)
	f.unlink()
	t.stats.FlowsClosed.Add(1)
}

func (t *table) pushFront(f *flow) {
	f.prev, f.next = &t.lru, t.lru.next
	f.prev.next, f.next.prev = f, f
}

// block queues f to be told when the listening socket can send again.
func (t *table) block(f *flow) {
	if !f.blocked {
		f.blocked = true
		t.blocked = append(t.blocked, f)
		t.l.WatchWriter(t.ln)
	}
}

// Writable lets the flows whose replies waited send them.
func (t *table) Writable(ln *loop.Socket) {
	waiting := t.blocked
	t.blocked = nil
	for _, f := range waiting {
		f.blocked = false
		if !f.client.Closed() {
			t.l.Notify(f.client, false, true)
		}
	}
	if len(t.blocked) == 0 {
		t.l.UnwatchWriter(ln)
	}
}

// SocketClosed implements loop.Closer: without its listening socket no flow
// can hear from its client any more.
func (t *table) SocketClosed(*loop.Socket) {
	for t.lru.next != &t.lru {
		t.lru.next.end()
	}
}
