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
// it must: no timer of its own (the table's sweep expires it, see
// table.sweep), no copy of its address as a map key, and nothing of a
// datagram once delivered.
type flow struct {
	t      *table
	client *loop.Socket
	addr   loop.PacketAddr // as the kernel gave it, to answer without conversion
	held   *[][]byte       // datagrams that came while the server was being opened, if any
	last   int64           // when the flow last saw a datagram (table.now)

	prev, next *flow // LRU ring: the least recently used is expired first
	blocked    bool  // in t.blocked
}

// deliver passes a datagram from the client to the relay, without a copy
// once the flow is relayed: the relay reads it at once through Recv.
func (f *flow) deliver(data []byte) {
	if f.client.Peer == nil {
		if f.held == nil {
			f.held = new([][]byte)
		}
		if len(*f.held) == maxHeld {
			f.t.stats.Dropped.Add(1)
			return
		}
		*f.held = append(*f.held, bytes.Clone(data))
		return
	}
	f.t.current, f.t.delivering = data, f
	f.t.l.Notify(f.client, true, false)
	f.t.current, f.t.delivering = nil, nil
}

// touch restarts the idle clock and makes f the most recently used.
func (f *flow) touch() {
	f.last = f.t.now()
	if f.t.lru.next != f {
		f.unlink()
		f.t.pushFront(f)
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
func (f *flow) RemoteAddr() netip.AddrPort { return f.addr.AddrPort() }

// end closes the flow: its server socket, if open, and its client socket,
// which counts the connection closed.
func (f *flow) end() {
	l := f.t.l
	if f.client.Peer != nil {
		l.Close(f.client.Peer)
	}
	l.Close(f.client)
}

// Recv implements loop.Transport: the datagrams held, then the one being
// delivered.
func (f *flow) Recv(p []byte) (int, error) {
	if f.held != nil {
		held := *f.held
		n := copy(p, held[0])
		if *f.held = held[1:]; len(*f.held) == 0 {
			f.held = nil
		}
		return n, nil
	}
	if t := f.t; t.delivering == f && t.current != nil {
		n := copy(p, t.current)
		t.current = nil
		return n, nil
	}
	return 0, unix.EAGAIN
}

// Send implements loop.Transport: a reply to the client, from the
// listening socket.
func (f *flow) Send(p []byte) (int, error) {
	if err := loop.SendTo(f.t.ln.Fd(), p, &f.addr); err != nil {
		if err == unix.EAGAIN {
			f.t.block(f)
		}
		return 0, err
	}
	f.t.stats.DatagramsOut.Add(1)
	f.t.stats.BytesOut.Add(uint64(len(p)))
	f.touch()
	return len(p), nil
}

// CloseWrite implements loop.Transport; a flow has no half-close.
func (f *flow) CloseWrite() error { return nil }

// Close implements loop.Transport: the client socket is closing.
func (f *flow) Close() error {
	f.held = nil
	f.t.remove(f)
	return nil
}
