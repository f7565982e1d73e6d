package loop

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nproxy/nproxy/internal/testrun"
)

// pipesInUse reports the pipes out of l's pool: open and not free.
func pipesInUse(l *Loop) (n int) {
	onLoop(l, func() { n = l.pipes.Open() - l.pipes.Idle() })
	return n
}

// waitPipes waits, 10 s at most, until l has want pipes in use.
func waitPipes(t *testing.T, l *Loop, want int, why string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); pipesInUse(l) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d pipes in use after 10 s, want %d: %s", pipesInUse(l), want, why)
		}
	}
}

// waitHeld waits, 10 s at most, until s's data waits in a pipe: between
// two passes a pipe holds data only if the socket it is for refused more
// (spliceIn writes it out at once), and a unix socket nobody reads stays
// full (unlike TCP, whose windows and buffers grow meanwhile).
func waitHeld(t *testing.T, l *Loop, s *stream, why string) {
	t.Helper()
	held := func() (ok bool) {
		onLoop(l, func() {
			p := s.in.Peer
			ok = p != nil && p.pipe != nil && p.pipe.N > 0
		})
		return ok
	}
	for deadline := time.Now().Add(10 * time.Second); !held(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
	}
}

// stream is a bulk transfer through the relay: the test writes data to
// the client end and reads it at the server end, each on a goroutine.
type stream struct {
	client, server int
	in             *Socket // the relay's side of client
	data           []byte
	done           chan error    // receive's verdict
	quit           chan struct{} // closed by close: a paused goroutine gives up
	running        sync.WaitGroup
	closeOnce      sync.Once
}

// streamBuffer bounds what the kernel buffers between the relay and a
// stream's reader (the relay's send buffer, the reader's receive buffer), so
// that a paused reader soon stops the relay: autotuned, they would hold
// megabytes.
const streamBuffer = 64 << 10

// startStream relays a TCP client to a server end, TCP or, if held, a unix
// stream socket, which a reader that does not read holds full for sure.
func startStream(t *testing.T, l *Loop, size int, held bool) *stream {
	client, inFd := tcpPair(t)
	var out, server int
	if held {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, server = fds[0], fds[1]
	} else {
		out, server = tcpPair(t)
	}
	unix.SetsockoptInt(out, unix.SOL_SOCKET, unix.SO_SNDBUF, streamBuffer)
	unix.SetsockoptInt(server, unix.SOL_SOCKET, unix.SO_RCVBUF, streamBuffer)
	unix.SetNonblock(inFd, true)
	unix.SetNonblock(out, true)
	var in *Socket
	onLoop(l, func() {
		a, _ := l.Adopt(inFd, nil)
		b, _ := l.Adopt(out, nil)
		a.Raw, b.Raw = true, true
		l.Relay(a, b)
		in = a
	})
	s := &stream{client: client, server: server, in: in, data: randomBytes(size),
		done: make(chan error, 1), quit: make(chan struct{})}
	t.Cleanup(s.close)
	return s
}

var errQuit = errors.New("the test gave up")

// inTwo runs f on p, in two parts if resume is set: the first pause
// bytes, then, once resume is closed, the rest.
func (s *stream) inTwo(f func(fd int, p []byte) error, fd int, p []byte, pause int, resume <-chan struct{}) error {
	if resume == nil {
		return f(fd, p)
	}
	if err := f(fd, p[:pause]); err != nil {
		return err
	}
	select {
	case <-resume:
		return f(fd, p[pause:])
	case <-s.quit:
		return errQuit
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// send writes the stream to the relay's client end, on a goroutine, in
// two parts if resume is set (see inTwo); blocking, it returns once the
// relay took it all.
func (s *stream) send(pause int, resume <-chan struct{}) {
	s.running.Go(func() { s.inTwo(writeAll, s.client, s.data, pause, resume) })
}

// receive reads the stream at the server end, on a goroutine, in two parts
// if resume is set (see inTwo), and reports on done whether it arrived
// byte-exact.
func (s *stream) receive(pause int, resume <-chan struct{}) {
	s.running.Go(func() {
		got := make([]byte, len(s.data))
		if err := s.inTwo(readFull, s.server, got, pause, resume); err != nil {
			s.done <- err
		} else if i := firstMismatch(got, s.data); i >= 0 {
			s.done <- fmt.Errorf("%d bytes arrived changed from byte %d", len(s.data), i)
		} else {
			s.done <- nil
		}
	})
}

// close ends the stream, once: the shutdowns end a read or write in
// progress, and the fds are closed only when no goroutine may use them, since
// a close could give their numbers to the next stream meanwhile. Closing
// the server end first, with bytes unread, fails the relay's write (EPIPE).
func (s *stream) close() {
	s.closeOnce.Do(func() {
		close(s.quit)
		unix.Shutdown(s.server, unix.SHUT_RDWR)
		unix.Shutdown(s.client, unix.SHUT_RDWR)
		s.running.Wait()
		unix.Close(s.server)
		unix.Close(s.client)
	})
}

// With one pipe for the whole loop, a stream whose pipe waits on a slow
// reader holds it, and the streams beside it are copied through buffers;
// their readers and writers pause with copied bytes still buffered for
// them, the pipe comes free, and they resume: they take the pipe in turn,
// mid-stream, and every byte arrives, in order (with no buffer limit, a
// source is read while bytes wait in the buffer: those must not be
// overtaken by a splice). A pipe closed with data in it (its reader gone)
// no longer counts, and when all is over every fd is closed again. Not
// parallel: it counts the process's fds.
func TestPipeBoundFallsBackToCopy(t *testing.T) {
	for _, size := range []int{0, -1} {
		t.Run(fmt.Sprintf("BufferSize=%d", size), func(t *testing.T) { pipeBoundFallsBack(t, size) })
	}
}

func pipeBoundFallsBack(t *testing.T, bufferSize int) {
	l := newTestLoop(t, Config{MaxPipes: 1, BufferSize: bufferSize})
	runLoop(t, l)
	time.Sleep(time.Millisecond) // Go starts its netpoller (2 fds) for its first timer: before the count
	base := testrun.OpenFDs(t)
	stats := l.Stats()

	// The only pipe holds data for a reader that leaves instead.
	gone := startStream(t, l, 16<<20, true)
	gone.send(0, nil)
	waitHeld(t, l, gone, "a stream with no reader does not hold the pipe")
	gone.close()
	waitPipes(t, l, 0, "a pipe closed with data in it still counts as in use")

	// The pipe again held by a stream nobody reads yet: the others copy.
	slow := startStream(t, l, 16<<20, true)
	slow.send(0, nil)
	waitHeld(t, l, slow, "a new stream cannot get the pipe back")
	copied := stats.Copied.Load()
	resume := make(chan struct{})
	var others []*stream
	for range 4 {
		s := startStream(t, l, 8<<20, false)
		s.send(6<<20, resume)
		s.receive(2<<20, resume)
		others = append(others, s)
	}
	// Each of them, not only all together: with no buffer limit one stream
	// may copy far more than the 2 MiB its reader takes before it pauses,
	// while another has not started yet.
	for _, s := range others {
		for deadline := time.Now().Add(10 * time.Second); traffic(l, s.in).InCopied < 2<<20; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes copied beside the stream holding the only pipe", stats.Copied.Load()-copied)
			}
		}
	}
	slow.receive(0, nil)
	await(t, slow)
	close(resume)
	var spliced uint64
	for i, s := range others {
		await(t, s)
		tr := traffic(l, s.in)
		t.Logf("stream %d: %d KiB copied, %d KiB spliced", i, tr.InCopied>>10, tr.InSpliced>>10)
		if tr.InCopied < 2<<20 {
			t.Errorf("stream %d: %d bytes copied while the only pipe was held by another, want 2 MiB at least", i, tr.InCopied)
		}
		spliced += tr.InSpliced
	}
	// With no buffer limit the sources are read while their buffers drain,
	// and a buffer never empty is never overtaken by a splice: only with
	// one must the pipe serve them.
	if spliced == 0 && bufferSize >= 0 {
		t.Error("once the pipe was free, none of the streams beside took it")
	}
	for _, s := range append(others, slow) {
		s.close()
	}
	waitPipes(t, l, 0, "the streams are over")
	// The pool's free pipe is released a second or two after its last use.
	for deadline := time.Now().Add(5 * pipeIdle); testrun.OpenFDs(t) != base; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds open, %d before the streams", testrun.OpenFDs(t), base)
		}
	}
}

// await waits for s to arrive, 30 s at most.
func await(t *testing.T, s *stream) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stream did not arrive in 30 s")
	}
}

// traffic returns s's byte counts, read on the loop.
func traffic(l *Loop, s *Socket) (tr Traffic) {
	onLoop(l, func() { tr = s.traffic })
	return tr
}
