package loop

import "golang.org/x/sys/unix"

// spliceFlags: MOVE is a hint the kernel may take to move pages rather than
// copy them; NONBLOCK makes the pipe side non-blocking (the socket already is).
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// canSplice says whether src's bytes can go to dst without entering user
// space: both plain TCP, no hook to show the bytes to, and nothing buffered
// for dst that the spliced bytes would overtake.
func (l *Loop) canSplice(src, dst *Socket) bool {
	return !l.cfg.NoSplice && src.Raw && dst.Raw && src.Hook == nil && dst.out.Len() == 0
}

// spliceIn moves one chunk from src into dst's pipe, then on to dst.
func (l *Loop) spliceIn(src, dst *Socket) (n int, full bool, err error) {
	p := dst.pipe
	if p == nil {
		if p, err = l.pipes.Get(); err != nil {
			// Out of fds for a pipe: this chunk takes the buffer path.
			return l.copyChunk(src, dst)
		}
		dst.pipe = p
	}
	moved, err := unix.Splice(src.fd, nil, p.W, nil, p.Cap, spliceFlags)
	if moved <= 0 || err != nil {
		if p.N == 0 {
			l.pipes.Put(p)
			dst.pipe = nil
		}
		return 0, false, err
	}
	n = int(moved)
	p.N += n
	l.stats.Spliced.Add(uint64(n))
	l.flush(dst)
	return n, n == p.Cap, nil
}

// spliceOut empties dst's pipe as far as dst takes it; it reports whether the
// pipe is empty (and back in the pool).
func (l *Loop) spliceOut(dst *Socket) bool {
	p := dst.pipe
	for p.N > 0 {
		n, err := unix.Splice(p.R, nil, dst.fd, nil, p.N, spliceFlags)
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			l.fail(dst, err)
			return false
		}
		p.N -= int(n)
	}
	dst.pipe = nil
	l.pipes.Put(p)
	return true
}
