package udp

import (
	"bytes"
	"net/netip"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// maxHeld bounds the datagrams a flow holds while its server is being
// opened: as many as the listening socket yields in one readiness event
// (batchRounds × batchSize), since a client's first burst arrives before
// even a connected UDP socket is reported ready. (With 16, a burst of 64
// lost 48 of them at every flow's start in the benchmark.)
const maxHeld = batchRounds * batchSize

// flow is one client address of a listening socket: the transport of its
// Virtual client socket. Datagrams from the client arrive through the
// table; replies leave from the listening socket to the client's address.
//
// An idle flow costs memory as long as it lives (up to MaxFlows of them, and
// the goal is 1 KiB each besides the server's socket), so it keeps only what
// it must, in 64 bytes (a size class of Go's allocator; TestFlowSize):
// no timer of its own (the table's sweep expires it, see table.expire), no
// pointer to its table (the client socket's State is the table), the
// client's address as a key rather than a 32-byte sockaddr, no map entry
// (the table's index chains through the flows), and nothing of a datagram
// once delivered (those that come while the server is being opened are held
// by the table).
type flow struct {
	client     *loop.Socket // State is the table
	last       int64        // when the flow last saw a datagram (table.now)
	prev, next *flow        // LRU ring: the least recently used is expired first
	chain      *flow        // the next flow in the same bucket of table.flows
	key        flowKey      // the client's address
	blocked    bool         // in t.blocked
	scope      uint32       // the client's IPv6 scope, if link-local
}

// table returns the flow table f belongs to.
func (f *flow) table() *table { return f.client.State.(*table) }

// deliver passes a datagram from the client to the relay, without a copy
// once the flow is relayed: the relay reads it at once through Recv.
func (f *flow) deliver(data []byte) {
	t := f.table()
	if f.client.Peer == nil {
		held := t.heldBy(f)
		if len(held) == maxHeld {
			t.stats.Dropped.Add(1)
			return
		}
		if t.held == nil {
			t.held = map[*flow][][]byte{}
		}
		t.held[f] = append(held, bytes.Clone(data))
		return
	}
	t.current, t.delivering = data, f
	t.l.Notify(f.client, true, false)
	t.current, t.delivering = nil, nil
}

// touch restarts the idle clock and makes f the most recently used.
func (f *flow) touch() {
	t := f.table()
	f.last = t.now()
	if t.lru.next != f {
		f.unlink()
		t.pushFront(f)
	}
}

func (f *flow) unlink() {
	if f.prev != nil {
		f.prev.next, f.next.prev = f.next, f.prev
		f.prev, f.next = nil, nil
	}
}

// RemoteAddr tells the loop the client's address (loop.RemoteAddresser):
// its socket's nick and the access log's address, computed only if asked.
func (f *flow) RemoteAddr() netip.AddrPort { return f.key.addrPort() }

// end closes the flow: its server socket, if open, and its client socket,
// which counts the connection closed.
func (f *flow) end() {
	l := f.client.Loop()
	if f.client.Peer != nil {
		l.Close(f.client.Peer)
	}
	l.Close(f.client)
}

// Recv implements loop.Transport: the datagrams held, then the one being
// delivered.
func (f *flow) Recv(p []byte) (int, error) {
	t := f.table()
	if held := t.heldBy(f); len(held) > 0 {
		n := copy(p, held[0])
		if len(held) == 1 {
			delete(t.held, f)
		} else {
			t.held[f] = held[1:]
		}
		return n, nil
	}
	if t.delivering == f && t.current != nil {
		n := copy(p, t.current)
		t.current = nil
		return n, nil
	}
	return 0, unix.EAGAIN
}

// Send implements loop.Transport: a reply to the client, from the
// listening socket.
func (f *flow) Send(p []byte) (int, error) {
	t := f.table()
	if err := loop.SendTo(t.ln.Fd(), p, t.addressOf(f)); err != nil {
		if err == unix.EAGAIN {
			t.block(f)
		}
		return 0, err
	}
	t.stats.DatagramsOut.Add(1)
	t.stats.BytesOut.Add(uint64(len(p)))
	f.touch()
	return len(p), nil
}

// CloseWrite implements loop.Transport; a flow has no half-close.
func (f *flow) CloseWrite() error { return nil }

// Close implements loop.Transport: the client socket is closing.
func (f *flow) Close() error {
	f.table().remove(f)
	return nil
}
