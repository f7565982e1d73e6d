package buffer

// Queue is the pending output of one socket: a list of rings taken from a
// pool as data arrives and given back as soon as they drain. One ring
// suffices in steady state; more are taken only when a hook makes data grow or
// when the buffer limit is off. The zero value is an empty queue holding no
// memory beyond its own header.
type Queue struct {
	rings []*Ring
	n     int
}

// Len reports the number of pending bytes.
func (q *Queue) Len() int { return q.n }

// Push appends a copy of p, taking rings from pool as needed.
func (q *Queue) Push(pool *Pool, p []byte) {
	q.n += len(p)
	for len(p) > 0 {
		if len(q.rings) == 0 || q.rings[len(q.rings)-1].Free() == 0 {
			q.rings = append(q.rings, pool.Get())
		}
		p = p[q.rings[len(q.rings)-1].Write(p):]
	}
}

// Peek returns the next contiguous run of pending bytes (empty if none).
func (q *Queue) Peek() []byte {
	if len(q.rings) == 0 {
		return nil
	}
	return q.rings[0].Peek()
}

// Discard consumes n bytes, at most len(Peek()), and returns drained rings
// to pool.
func (q *Queue) Discard(pool *Pool, n int) {
	q.n -= n
	r := q.rings[0]
	r.Discard(n)
	if r.Len() == 0 {
		pool.Put(r)
		copy(q.rings, q.rings[1:])
		q.rings[len(q.rings)-1] = nil
		q.rings = q.rings[:len(q.rings)-1]
	}
}

// MoveTo appends every pending byte of q to dst, without copying, leaving q
// empty.
func (q *Queue) MoveTo(dst *Queue) {
	dst.rings = append(dst.rings, q.rings...)
	dst.n += q.n
	clear(q.rings)
	q.rings, q.n = q.rings[:0], 0
}

// Reset drops every pending byte and returns the rings to pool.
func (q *Queue) Reset(pool *Pool) {
	for i, r := range q.rings {
		pool.Put(r)
		q.rings[i] = nil
	}
	q.rings, q.n = q.rings[:0], 0
}
