package ssl

import "sync"

// DefaultQueueSize is the capacity of each of an engine's four byte queues.
// Every time a queue fills, the loop and an engine goroutine hand over to
// each other (an eventfd write and a futex wake), so the size sets the
// hand-overs per byte. Measured on this 2-core machine, 3 s one-way streams
// through one ssl in, server to client, loaded: 32 KiB cost 2.8-3.6 CPU
// seconds per GB and 170-250 k context switches per GB; 64 KiB 2.2-2.4 s and
// 120 k; 128 KiB 1.6-2.1 s and 55-75 k; 256 KiB no better than 128. Queues
// hold memory only while bytes are in them, so an idle session costs none.
const DefaultQueueSize = 131072

// storage recycles queue memory of the default size: queues give their memory
// back as soon as they drain, so an idle connection holds none.
var storage = sync.Pool{New: func() any { b := make([]byte, DefaultQueueSize); return &b }}

// ring is a bounded FIFO of bytes with one producer and one consumer. The
// caller serialises calls with the engine's mutex, except that a slice
// returned by peek or reserve may be read or filled outside the mutex: the
// producer only touches free space and the consumer only queued bytes, and the
// memory never moves while such a slice is out.
type ring struct {
	buf      []byte
	size     int  // capacity limit
	r, n     int  // read offset and number of queued bytes
	reserved bool // a reserve slice is being filled outside the mutex
}

func (q *ring) len() int  { return q.n }
func (q *ring) free() int { return q.size - q.n }

// grab allocates the memory on first use.
func (q *ring) grab() {
	if q.buf != nil {
		return
	}
	if q.size == DefaultQueueSize {
		q.buf = *storage.Get().(*[]byte)
		return
	}
	q.buf = make([]byte, q.size)
}

// release gives the memory back once nothing is queued or being written.
func (q *ring) release() {
	if q.n != 0 || q.reserved || q.buf == nil {
		return
	}
	if q.size == DefaultQueueSize {
		b := q.buf
		storage.Put(&b)
	}
	q.buf, q.r = nil, 0
}

// push copies as much of p as fits and returns how much it took.
func (q *ring) push(p []byte) int {
	total := 0
	for len(p) > 0 && q.free() > 0 {
		w := q.reserve()
		c := copy(w, p)
		q.commit(c)
		p = p[c:]
		total += c
	}
	return total
}

// reserve returns the contiguous free space after the queued bytes, for the
// producer to fill before calling commit.
func (q *ring) reserve() []byte {
	if q.free() == 0 {
		return nil
	}
	q.grab()
	q.reserved = true
	w := (q.r + q.n) % q.size
	end := q.size
	if w < q.r {
		end = q.r
	}
	return q.buf[w:end]
}

// commit appends n bytes written into the last reserve slice.
func (q *ring) commit(n int) {
	q.n += n
	q.reserved = false
	q.release()
}

// peek returns the oldest contiguous run of queued bytes.
func (q *ring) peek() []byte {
	if q.n == 0 {
		return nil
	}
	end := q.r + q.n
	if end > q.size {
		end = q.size
	}
	return q.buf[q.r:end]
}

// discard drops n bytes from the front.
func (q *ring) discard(n int) {
	q.r = (q.r + n) % q.size
	q.n -= n
	if q.n == 0 && !q.reserved {
		q.r = 0 // keeps runs long; not while the producer fills a slice
	}
	q.release()
}

// pull moves queued bytes into p and returns how many.
func (q *ring) pull(p []byte) int {
	total := 0
	for len(p) > 0 && q.n > 0 {
		c := copy(p, q.peek())
		q.discard(c)
		p = p[c:]
		total += c
	}
	return total
}

// reset drops whatever is queued.
func (q *ring) reset() {
	q.n = 0
	if !q.reserved {
		q.r = 0
	}
	q.release()
}
