package buffer

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Pipe is a kernel pipe used as splice's intermediate buffer: bytes go
// socket → pipe → socket without entering user space.
type Pipe struct {
	R, W int // read and write ends
	// N is the number of bytes spliced in and not yet spliced out. The kernel
	// does not tell; the relay keeps count so that a pipe goes back to the pool
	// only when empty.
	N int
	// Cap is the pipe's capacity, the most one splice into it can move.
	Cap int
}

// defaultPipeCap is Linux's pipe capacity when F_SETPIPE_SZ is not used or
// refused.
const defaultPipeCap = 64 << 10

// ErrPipeLimit is Get's error when the pool's bound on open pipes is
// reached: the caller copies through a buffer instead.
var ErrPipeLimit = errors.New("buffer: every pipe the pool may open is in use")

// PipePool keeps empty pipes for reuse, and bounds the pipes open at once.
// A pipe costs two file descriptors, so the pool is small and bounded, and
// connections hold a pipe only while data is in flight: an idle connection
// holds none. Every pipe taken with Get must be given back with Put, even
// one that still holds data, so that the pool's count of open pipes (and so
// of the fds they hold) stays exact.
type PipePool struct {
	size  int
	max   int
	limit int
	open  int // pipes made by the pool and not yet closed: in use or free
	free  []*Pipe
}

// NewPipePool returns a pool keeping at most maxFree pipes, with at most
// limit pipes open at once, in use or free: 0 means no bound, a negative
// limit that Get never makes a pipe. A size above 0 asks the kernel for
// pipes of that capacity (F_SETPIPE_SZ); larger pipes let one splice move
// more, up to /proc/sys/fs/pipe-max-size.
func NewPipePool(size, maxFree, limit int) *PipePool {
	return &PipePool{size: size, max: maxFree, limit: limit}
}

// Get returns an empty pipe, making one if the pool has no free one. It
// fails with ErrPipeLimit when the pool's bound is reached, and with the
// kernel's error (EMFILE...) when a pipe cannot be made.
func (pp *PipePool) Get() (*Pipe, error) {
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free[n-1] = nil
		pp.free = pp.free[:n-1]
		return p, nil
	}
	if pp.limit < 0 || pp.limit > 0 && pp.open >= pp.limit {
		return nil, ErrPipeLimit
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	pp.open++
	p := &Pipe{R: fds[0], W: fds[1], Cap: defaultPipeCap}
	if pp.size > 0 {
		// The kernel refuses sizes above /proc/sys/fs/pipe-max-size, and
		// beyond the user's pipe quota; the default pipe still works.
		if n, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pp.size); err == nil {
			p.Cap = n
		}
	}
	return p, nil
}

// Put gives a pipe back; a pipe that still holds data, or one beyond the
// pool's bound of free pipes, is closed instead since its content cannot be
// reused.
func (pp *PipePool) Put(p *Pipe) {
	if p.N == 0 && len(pp.free) < pp.max {
		pp.free = append(pp.free, p)
		return
	}
	pp.close(p)
}

// Idle reports how many free pipes the pool holds.
func (pp *PipePool) Idle() int { return len(pp.free) }

// Open reports how many pipes of the pool are open, in use or free: twice
// that many fds.
func (pp *PipePool) Open() int { return pp.open }

// Release closes every free pipe. The pool stays usable: a loop releases
// its pipes when they have sat idle, and when it shuts down.
func (pp *PipePool) Release() {
	for _, p := range pp.free {
		pp.close(p)
	}
	pp.free = nil
}

// close closes both ends of p, which no longer counts against the bound.
func (pp *PipePool) close(p *Pipe) {
	unix.Close(p.R)
	unix.Close(p.W)
	pp.open--
}
