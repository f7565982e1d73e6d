package buffer

// Ring is a fixed-capacity circular byte buffer. Its zero value has no
// capacity; rings come from a Pool.
type Ring struct {
	buf  []byte
	head int // index of the first pending byte
	n    int // number of pending bytes
}

// Len reports the number of pending bytes.
func (r *Ring) Len() int { return r.n }

// Free reports how many more bytes fit.
func (r *Ring) Free() int { return len(r.buf) - r.n }

// Write copies as much of p as fits and reports how much that was.
func (r *Ring) Write(p []byte) int {
	total := 0
	for len(p) > 0 && r.Free() > 0 {
		tail := (r.head + r.n) % len(r.buf)
		end := len(r.buf)
		if tail < r.head {
			end = r.head
		}
		c := copy(r.buf[tail:end], p)
		r.n += c
		p = p[c:]
		total += c
	}
	return total
}

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
	if r.n == 0 {
		r.head = 0 // keep later writes contiguous
		return
	}
	r.head = (r.head + n) % len(r.buf)
}
