package httptunnel

// maxViews bounds the frames of one batch a stream reads in place: a
// tunnel's read buffer (bufSize) holds at most five 16 KiB DATA frames.
// Beyond that, payload goes to the stream's rings (spill).
const maxViews = 8

// views is a stream's payload still lying in the frames of the batch
// being dispatched, in order, with no copy made; a fixed array, so that
// it allocates nothing.
type views struct {
	p    [maxViews][]byte
	r, w int
	n    int // bytes in p[r:w]
}

// Len is the number of bytes held.
func (v *views) Len() int { return v.n }

// add appends p, unless all the views are taken.
func (v *views) add(p []byte) bool {
	if v.w == maxViews {
		return false
	}
	v.p[v.w] = p
	v.w++
	v.n += len(p)
	return true
}

// peek is the first view's bytes.
func (v *views) peek() []byte { return v.p[v.r] }

// discard drops the first n bytes of the first view.
func (v *views) discard(n int) {
	v.p[v.r] = v.p[v.r][n:]
	v.n -= n
	if len(v.p[v.r]) == 0 {
		v.p[v.r] = nil
		v.r++
	}
	if v.r == v.w {
		v.r, v.w = 0, 0
	}
}
