package loop

// Bounds of the datagrams queued for one socket that cannot take them now.
// UDP promises no delivery, so past these a datagram is dropped rather than
// grow memory or stall its source.
const (
	datagramQueueCount = 64
	datagramQueueBytes = 256 << 10
)

// datagramQueue is a FIFO of whole datagrams. Its buffers are reused lap
// after lap, and released when it drains, so that an idle flow holds none.
type datagramQueue struct {
	bufs  [][]byte
	head  int
	n     int
	bytes int
}

func (q *datagramQueue) len() int { return q.n }

// push copies data at the tail; false means the queue is full.
func (q *datagramQueue) push(data []byte) bool {
	if q.n == datagramQueueCount || q.bytes+len(data) > datagramQueueBytes {
		return false
	}
	if q.bufs == nil {
		q.bufs = make([][]byte, datagramQueueCount)
	}
	i := (q.head + q.n) % datagramQueueCount
	q.bufs[i] = append(q.bufs[i][:0], data...)
	q.n++
	q.bytes += len(data)
	return true
}

// peek returns the datagram at the head; the queue must not be empty.
func (q *datagramQueue) peek() []byte { return q.bufs[q.head] }

// pop drops the datagram at the head.
func (q *datagramQueue) pop() {
	q.bytes -= len(q.bufs[q.head])
	q.head = (q.head + 1) % datagramQueueCount
	q.n--
	if q.n == 0 {
		q.bufs, q.head, q.bytes = nil, 0, 0
	}
}
