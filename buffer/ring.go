package buffer

// Ring is a fixed-capacity circular byte buffer. Its zero value has no
// capacity; rings come from a Pool or NewRing.
//
// A producer may also fill a ring in place: Reserve hands out the free space
// after the pending bytes and Commit appends what was written there. While
// such a reservation is out, the pending bytes never move, so the slice may
// be filled outside the lock that otherwise guards the ring (the TLS engine
// does so) while the consumer reads and discards.
type Ring struct {
	buf      []byte
	head     int  // index of the first pending byte
	n        int  // number of pending bytes
	reserved bool // a Reserve slice is out
}

// NewRing returns an empty ring of size bytes.
func NewRing(size int) *Ring { return &Ring{buf: make([]byte, size)} }

// Len reports the number of pending bytes.
func (r *Ring) Len() int { return r.n }

// Cap reports the ring's capacity.
func (r *Ring) Cap() int { return len(r.buf) }

// Free reports how many more bytes fit.
func (r *Ring) Free() int { return len(r.buf) - r.n }

// tail returns the contiguous free space after the pending bytes.
func (r *Ring) tail() []byte {
	t := (r.head + r.n) % len(r.buf)
	end := len(r.buf)
	if t < r.head {
		end = r.head
	}
	return r.buf[t:end]
}

// Write copies as much of p as fits and reports how much that was.
func (r *Ring) Write(p []byte) int {
	total := 0
	for len(p) > 0 && r.Free() > 0 {
		c := copy(r.tail(), p)
		r.n += c
		p = p[c:]
		total += c
	}
	return total
}

// Reserve returns the contiguous free space after the pending bytes (nil if
// the ring is full), for the producer to fill before calling Commit.
func (r *Ring) Reserve() []byte {
	if r.Free() == 0 {
		return nil
	}
	r.reserved = true
	return r.tail()
}

// Commit appends n bytes written into the slice Reserve returned, and ends
// the reservation.
func (r *Ring) Commit(n int) {
	r.n += n
	r.reserved = false
}

// Reserved reports whether a Reserve slice is out.
func (r *Ring) Reserved() bool { return r.reserved }

// Peek returns the longest contiguous run of pending bytes, without
// consuming them; after a wrap-around it is shorter than Len.
func (r *Ring) Peek() []byte {
	end := r.head + r.n
	if end > len(r.buf) {
		end = len(r.buf)
	}
	return r.buf[r.head:end]
}

// Discard consumes n pending bytes (n <= Len).
func (r *Ring) Discard(n int) {
	r.n -= n
	if r.n == 0 && !r.reserved {
		r.head = 0 // keep later writes contiguous, unless a producer fills the tail
		return
	}
	r.head = (r.head + n) % len(r.buf)
}

// Reset drops every pending byte.
func (r *Ring) Reset() { r.Discard(r.n) }
