package loop

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// openFDs counts the process's open fds, as nproxytest.OpenFDs does (which
// this package cannot import: nproxytest imports loop).
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
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

// stream writes data to the relay's client end, on a goroutine; receive
// reads it at the server end.
type stream struct {
	client, server int
	in             *Socket // the relay's side of client
	data           []byte
	done           chan error
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
	s := &stream{client: client, server: server, in: in, data: randomBytes(size), done: make(chan error, 1)}
	t.Cleanup(s.close)
	go unix.Write(client, s.data) // blocking: it returns once the relay took it all
	return s
}

// receive reads the stream at the server end, on a goroutine, and reports
// on done whether it arrived byte-exact. It stops after the first pause
// bytes until resume is closed (nil: no pause).
func (s *stream) receive(pause int, resume <-chan struct{}) {
	go func() {
		got := make([]byte, len(s.data))
		err := readFull(s.server, got[:pause])
		if err == nil {
			if resume != nil {
				<-resume
			}
			err = readFull(s.server, got[pause:])
		}
		if err != nil {
			s.done <- err
		} else if i := firstMismatch(got, s.data); i >= 0 {
			s.done <- fmt.Errorf("%d bytes arrived changed from byte %d", len(s.data), i)
		} else {
			s.done <- nil
		}
	}()
}

// close closes the test's two ends, once: a second close could hit an fd
// number given to something else meanwhile.
func (s *stream) close() {
	s.closeOnce.Do(func() {
		unix.Close(s.client)
		unix.Close(s.server)
	})
}

// With one pipe for the whole loop, a stream whose pipe waits on a slow
// reader holds it, and the streams beside it are copied through buffers;
// their readers pause with copied bytes still buffered for them, and once
// the pipe is free they take it in turn, mid-stream: every byte arrives,
// in order. A pipe closed with data in it (its reader reset) no longer
// counts, and when all is over every fd is closed again. Not parallel: it
// counts the process's fds.
func TestPipeBoundFallsBackToCopy(t *testing.T) {
	l := newTestLoop(t, Config{MaxPipes: 1})
	runLoop(t, l)
	time.Sleep(time.Millisecond) // Go starts its netpoller (2 fds) for its first timer: before the count
	base := openFDs(t)
	stats := l.Stats()

	// The only pipe holds data for a reader that resets instead.
	reset := startStream(t, l, 16<<20, true)
	waitHeld(t, l, reset, "a stream with no reader does not hold the pipe")
	reset.close() // with bytes unread: the relay's write fails with EPIPE
	waitPipes(t, l, 0, "a pipe closed with data in it still counts as in use")

	// The pipe again held by a stream nobody reads yet: the others copy.
	slow := startStream(t, l, 16<<20, true)
	waitHeld(t, l, slow, "a new stream cannot get the pipe back")
	copied := stats.Copied.Load()
	resume := make(chan struct{})
	var others []*stream
	for range 4 {
		s := startStream(t, l, 8<<20, false)
		s.receive(2<<20, resume)
		others = append(others, s)
	}
	for deadline := time.Now().Add(10 * time.Second); stats.Copied.Load()-copied < 4*(2<<20); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes copied beside the stream holding the only pipe", stats.Copied.Load()-copied)
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
	if spliced == 0 {
		t.Error("once the pipe was free, none of the streams beside took it")
	}
	for _, s := range append(others, slow) {
		s.close()
	}
	waitPipes(t, l, 0, "the streams are over")
	// The pool's free pipe is released a second or two after its last use.
	for deadline := time.Now().Add(5 * pipeIdle); openFDs(t) != base; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds open, %d before the streams", openFDs(t), base)
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
