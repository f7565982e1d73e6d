package buffer

// Pool recycles rings of one size so that relaying allocates nothing in
// steady state. It keeps at most a bounded number of free rings: memory
// returned by a burst of slow peers goes back to the garbage collector instead
// of being held forever.
type Pool struct {
	size int
	max  int
	free []*Ring
}

// DefaultRingSize is the capacity of a ring when NewPool is given 0.
const DefaultRingSize = 16 << 10

// NewPool returns a pool of rings of size bytes each that keeps at most
// maxFree of them when they are returned. A size of 0 means DefaultRingSize.
func NewPool(size, maxFree int) *Pool {
	if size <= 0 {
		size = DefaultRingSize
	}
	return &Pool{size: size, max: maxFree}
}

// Get returns an empty ring.
func (p *Pool) Get() *Ring {
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return r
	}
	return &Ring{buf: make([]byte, p.size)}
}

// Put gives a ring back. The ring must not be used afterwards.
func (p *Pool) Put(r *Ring) {
	r.head, r.n = 0, 0
	if len(p.free) < p.max {
		p.free = append(p.free, r)
	}
}

// Idle reports how many free rings the pool holds.
func (p *Pool) Idle() int { return len(p.free) }
