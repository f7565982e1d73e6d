package loop

import "golang.org/x/sys/unix"

// splice(2) needs a pipe at one end, and nothing more: between a pipe (a
// process's stdin or stdout) and a socket, bytes go straight across, with
// no pipe from the pool in the middle and half the splice calls.
//
// The price is an ambiguous EAGAIN: the source may be empty, or the
// destination full. It is read as "full" — the source reported readable —
// so the source leaves the readers list and the destination joins the
// writers list; its Writable then finds nothing pending and puts the
// source back (afterWrite). A wrong guess costs one extra epoll round.

// isPipe reports whether fd is a pipe or FIFO.
func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// splicesDirect says whether src's bytes can go to dst in one splice: one
// of the two fds is a pipe, and no pipe from the pool holds dst's data.
func splicesDirect(src, dst *Socket) bool {
	if dst.pipe != nil {
		return false
	}
	from, to := src.splitState(), dst.splitState()
	return from != nil && from.r.pipe || to != nil && to.w.pipe
}

// spliceDirect moves one chunk from src to dst in one splice.
func (l *Loop) spliceDirect(src, dst *Socket) (n int, full bool, err error) {
	moved, err := unix.Splice(src.fd, nil, dst.wfd, nil, l.cfg.PipeSize, spliceFlags)
	switch {
	case err == unix.EAGAIN:
		l.UnwatchReader(src)
		l.WatchWriter(dst)
		return 0, false, err
	case err != nil || moved <= 0:
		return 0, false, err
	}
	n = int(moved)
	l.stats.Spliced.Add(uint64(n))
	return n, n == l.cfg.PipeSize, nil
}
