package tlsengine

import (
	"sync"

	"github.com/nproxy/nproxy/buffer"
)

// DefaultQueueSize is the capacity of each of an engine's four byte queues.
// Every time a queue fills, the loop and an engine goroutine hand over to
// each other (an eventfd write and a futex wake), so the size sets the
// hand-overs per byte. Measured on this 2-core machine, 3 s one-way streams
// through one ssl in, server to client, loaded: 32 KiB cost 2.8-3.6 CPU
// seconds per GB and 170-250 k context switches per GB; 64 KiB 2.2-2.4 s and
// 120 k; 128 KiB 1.6-2.1 s and 55-75 k; 256 KiB no better than 128. Queues
// hold memory only while bytes are in them, so an idle session costs none.
const DefaultQueueSize = 131072

// storage recycles rings of the default size: queues give their ring back
// as soon as they drain, so an idle connection holds none. (The loop's
// buffer.Pool is not safe for the engine's goroutines; a sync.Pool is.)
var storage = sync.Pool{New: func() any { return buffer.NewRing(DefaultQueueSize) }}

// ring is a bounded FIFO of bytes with one producer and one consumer: a
// buffer.Ring taken only while bytes are queued. The caller serialises calls
// with the engine's mutex, except that a slice returned by peek or reserve
// may be read or filled outside the mutex: the producer only touches free
// space and the consumer only queued bytes, and buffer.Ring never moves the
// bytes while a reservation is out.
type ring struct {
	r    *buffer.Ring // nil while empty
	size int          // capacity limit
}

func (q *ring) len() int {
	if q.r == nil {
		return 0
	}
	return q.r.Len()
}

func (q *ring) free() int { return q.size - q.len() }

// grab takes a ring on first use.
func (q *ring) grab() {
	if q.r != nil {
		return
	}
	if q.size == DefaultQueueSize {
		q.r = storage.Get().(*buffer.Ring)
		return
	}
	q.r = buffer.NewRing(q.size)
}

// release gives the ring back once nothing is queued or being written.
func (q *ring) release() {
	if q.r == nil || q.r.Len() != 0 || q.r.Reserved() {
		return
	}
	if q.size == DefaultQueueSize {
		q.r.Reset()
		storage.Put(q.r)
	}
	q.r = nil
}

// push copies as much of p as fits and returns how much it took.
func (q *ring) push(p []byte) int {
	if len(p) == 0 || q.free() == 0 {
		return 0
	}
	q.grab()
	n := q.r.Write(p)
	q.release()
	return n
}

// reserve returns the contiguous free space after the queued bytes, for the
// producer to fill before calling commit.
func (q *ring) reserve() []byte {
	if q.free() == 0 {
		return nil
	}
	q.grab()
	return q.r.Reserve()
}

// commit appends n bytes written into the last reserve slice.
func (q *ring) commit(n int) {
	q.r.Commit(n)
	q.release()
}

// peek returns the oldest contiguous run of queued bytes.
func (q *ring) peek() []byte {
	if q.len() == 0 {
		return nil
	}
	return q.r.Peek()
}

// discard drops n bytes from the front.
func (q *ring) discard(n int) {
	if n == 0 {
		return
	}
	q.r.Discard(n)
	q.release()
}

// pull moves queued bytes into p and returns how many.
func (q *ring) pull(p []byte) int {
	total := 0
	for len(p) > 0 && q.len() > 0 {
		c := copy(p, q.peek())
		q.discard(c)
		p = p[c:]
		total += c
	}
	return total
}

// reset drops whatever is queued.
func (q *ring) reset() {
	if q.r != nil {
		q.r.Reset()
		q.release()
	}
}
