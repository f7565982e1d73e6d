package loop

import (
	"time"

	"github.com/nproxy/nproxy/buffer"
	"golang.org/x/sys/unix"
)

// spliceFlags: MOVE is a hint the kernel may take to move pages rather than
// copy them; NONBLOCK makes the pipe side non-blocking (the socket already is).
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// canSplice says whether src's bytes can go to dst without entering user
// space: both plain TCP, no hook to show the bytes to, and nothing buffered
// for dst that the spliced bytes would overtake.
func (l *Loop) canSplice(src, dst *Socket) bool {
	return !l.cfg.NoSplice && src.Raw && dst.Raw && src.Hook == nil && dst.out.Len() == 0
}

// copyWindow is what a read of a pair that could be spliced asks for until
// the pair proves to be a stream. Splicing costs a pipe and two splice calls
// whose fixed cost (page references, the pipe's locks) exceeds copying a
// short message twice; haproxy's splice-auto never splices under 4 KiB
// (MIN_SPLICE_FORWARD). A read that fills the window (its buffer size, 16
// KiB) says more was waiting: from then on the socket is spliced.
const copyWindow = 16 << 10

// copySmall moves a read of a pair that could be spliced through the
// scratch buffer, and marks src as a stream once a read fills the window.
// A stream stays one: a socket that has streamed bulk streams again, and
// splicing a short message costs what it costs today, no more.
func (l *Loop) copySmall(src, dst *Socket) (n int, full bool, err error) {
	n, full, err = l.copyChunk(src, dst, l.scratch[:min(copyWindow, len(l.scratch))])
	src.streaming = full
	return n, full, err
}

// spliceIn moves one chunk from src into dst's pipe, then on to dst.
func (l *Loop) spliceIn(src, dst *Socket) (n int, full bool, err error) {
	p := dst.pipe
	if p == nil {
		if p, err = l.takePipe(); err != nil {
			// Every pipe the loop may open is in use (Config.MaxPipes),
			// or the fds ran out: this chunk takes the buffer path. No
			// byte is in a pipe for dst, so none is overtaken; while
			// the copy waits in dst's buffer, canSplice says no, and
			// the next chunk after it drains asks for a pipe again.
			return l.copyChunk(src, dst, l.scratch)
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
	countSpliced(src, dst, n)
	l.flush(dst)
	return n, n == p.Cap, nil
}

// spliceOut empties dst's pipe as far as dst takes it; it reports whether the
// pipe is empty (and back in the pool).
func (l *Loop) spliceOut(dst *Socket) bool {
	p := dst.pipe
	for p.N > 0 {
		n, err := unix.Splice(p.R, nil, dst.wfd, nil, p.N, spliceFlags)
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

// pipeIdle is how long the pool's free pipes outlive the last use of one. A
// pipe costs two fds and the kernel's ring of pipe buffers (1 MiB pipes have
// 256 slots), so a relay that has gone quiet gives them back, and nproxy with
// no connection holds its listeners' fds and nothing else; a busy relay keeps
// reusing them.
const pipeIdle = time.Second

// takePipe gets a pipe from the pool, and makes sure the pool is trimmed
// once pipes stop being used.
func (l *Loop) takePipe() (*buffer.Pipe, error) {
	l.pipesUsed = true
	if l.pipeTrim == nil {
		l.pipeTrim = l.AfterFunc(pipeIdle, l.trimPipes)
	}
	return l.pipes.Get()
}

// trimPipes runs every pipeIdle while pipes are in use, and releases the
// free ones after a whole period in which none was taken. A flag per pipe
// taken and a timer per second cost less than tracking each pipe's age.
func (l *Loop) trimPipes() {
	if l.pipesUsed {
		l.pipesUsed = false
		l.pipeTrim = l.AfterFunc(pipeIdle, l.trimPipes)
		return
	}
	l.pipeTrim = nil
	l.pipes.Release()
}
