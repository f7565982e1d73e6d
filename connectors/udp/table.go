package udp

import (
	"time"

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
	inet6   bool // ln is an IPv6 socket: IPv4 clients are IPv4-mapped
	batch   *loop.DatagramBatch
	flows   flowIndex
	lru     flow    // sentinel of the LRU ring: lru.next is the most recent
	blocked []*flow // flows whose replies wait for ln to be writable
	stats   *Stats

	// held keeps the datagrams of flows whose server is being opened (see
	// flow.deliver): few flows at a time, so not a slot in every flow.
	held map[*flow][][]byte
	// to is the address of the reply being sent (see addressOf).
	to loop.PacketAddr

	epoch time.Time   // the origin of flow.last, on the monotonic clock
	sweep *loop.Timer // the next expiry sweep, nil while no flow is open

	// The datagram being delivered to the relay (see flow.deliver), here
	// rather than in every flow since only one is at a time.
	current    []byte
	delivering *flow
}

func newTable(in *In, l *loop.Loop, h connectors.Handler, inet6 bool) *table {
	t := &table{
		in: in, l: l, h: h, inet6: inet6,
		// One byte more than the longest datagram accepted, so that a
		// longer one shows as such rather than as a truncated good one.
		batch: loop.NewDatagramBatch(batchSize, min(in.maxDatagram()+1, loop.MaxDatagram+1)),
		stats: new(Stats),
		epoch: time.Now(),
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
	key := keyOf(from.AddrPort())
	f := t.flows.find(key)
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
func (t *table) open(key flowKey, from *loop.PacketAddr) *flow {
	if t.flows.n >= t.in.maxFlows() {
		t.evict()
	}
	f := &flow{key: key, scope: from.Scope()}
	c := t.l.Virtual(f)
	c.Connector, c.Hook, c.State = t.in, t.in.Hook, t
	c.SetDatagram(loop.DatagramOptions{Max: t.in.maxDatagram(), Dropped: &t.stats.Dropped})
	f.client = c
	t.flows.add(f)
	t.pushFront(f)
	t.stats.FlowsOpened.Add(1)
	f.touch()
	if t.sweep == nil {
		t.sweep = t.l.AfterFunc(t.sweepEvery(), t.expire)
	}
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
	t.l.Logger().Debug("udp flow evicted", "client", f.RemoteAddr(), "max_flows", t.in.maxFlows())
	f.end()
}

// remove forgets a flow whose client socket is closing.
func (t *table) remove(f *flow) {
	t.flows.remove(f)
	delete(t.held, f)
	f.unlink()
	t.stats.FlowsClosed.Add(1)
}

// heldBy returns the datagrams held for f.
func (t *table) heldBy(f *flow) [][]byte {
	if len(t.held) == 0 {
		return nil // no map lookup on the relay's path
	}
	return t.held[f]
}

// addressOf returns f's client address as sendto(2) takes it, valid until
// the next call.
func (t *table) addressOf(f *flow) *loop.PacketAddr {
	t.to.SetAddrPort(f.key.addrPort(), t.inet6)
	t.to.SetScope(f.scope)
	return &t.to
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
	t.stopSweep()
}

// now is the table's clock for flow.last: monotonic, in nanoseconds.
func (t *table) now() int64 { return int64(time.Since(t.epoch)) }

// sweepEvery is the period of the expiry sweep: a flow ends between
// timeout and 1.25 × timeout after its last datagram. One timer per table
// rather than one per flow, which would cost every idle flow a timer, its
// heap slot and a closure.
func (t *table) sweepEvery() time.Duration { return t.in.timeout() / 4 }

// expire ends the flows idle for the timeout. They are the tail of the LRU
// ring, so the sweep visits only those it ends, and the next one.
func (t *table) expire() {
	t.sweep = nil
	idle := t.now() - int64(t.in.timeout())
	for f := t.lru.prev; f != &t.lru && f.last <= idle; f = t.lru.prev {
		t.l.Logger().Debug("udp flow expired", "client", f.RemoteAddr())
		f.end()
	}
	if t.lru.next != &t.lru {
		t.sweep = t.l.AfterFunc(t.sweepEvery(), t.expire)
	}
}

func (t *table) stopSweep() {
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
}
