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

// stream writes data to the relay's client end, on a goroutine; receive
// reads it at the server end.
type stream struct {
	client, server int
	data           []byte
	done           chan error
	closeOnce      sync.Once
}

func startStream(t *testing.T, l *Loop, size int) *stream {
	client, server := relayedPair(t, l, nil)
	s := &stream{client: client, server: server, data: randomBytes(size), done: make(chan error, 1)}
	t.Cleanup(s.close)
	go unix.Write(client, s.data) // blocking: it returns once the relay took it all
	return s
}

// receive reads the stream at the server end, on a goroutine, and reports
// on done whether it arrived byte-exact.
func (s *stream) receive() {
	go func() {
		got := make([]byte, len(s.data))
		if err := readFull(s.server, got); err != nil {
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
// reader holds it, and the streams beside it are copied through buffers,
// byte-exact; once that pipe drains they take it in turn, mid-stream, with
// no byte overtaken. A pipe closed with data in it (its reader reset) no
// longer counts, and when all is over every fd is closed again. Not
// parallel: it counts the process's fds.
func TestPipeBoundFallsBackToCopy(t *testing.T) {
	l := newTestLoop(t, Config{MaxPipes: 1})
	runLoop(t, l)
	openFDs(t) // the first ReadDir may start Go's own poller
	base := openFDs(t)
	stats := l.Stats()

	// The only pipe holds data for a reader that resets instead.
	reset := startStream(t, l, 16<<20)
	waitPipes(t, l, 1, "a stream with no reader holds the pipe")
	unix.SetsockoptLinger(reset.server, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
	reset.close()
	waitPipes(t, l, 0, "a pipe closed with data in it still counts as in use")

	// The pipe again held by a stream nobody reads yet: the others copy.
	slow := startStream(t, l, 16<<20)
	waitPipes(t, l, 1, "a new stream cannot get the pipe back")
	spliced, copied := stats.Spliced.Load(), stats.Copied.Load()
	var others []*stream
	for range 4 {
		s := startStream(t, l, 8<<20)
		s.receive()
		others = append(others, s)
	}
	for deadline := time.Now().Add(10 * time.Second); stats.Copied.Load()-copied < 1<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes copied beside the stream holding the only pipe", stats.Copied.Load()-copied)
		}
	}
	slow.receive()
	for i, s := range append(others, slow) {
		select {
		case err := <-s.done:
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("stream %d did not arrive in 30 s", i)
		}
	}
	if n := stats.Spliced.Load() - spliced; n < uint64(len(slow.data))/2 {
		t.Errorf("%d bytes spliced: the slow stream's pipe did not serve", n)
	}
	t.Logf("bound 1, five streams: %d MiB spliced, %d MiB copied",
		(stats.Spliced.Load()-spliced)>>20, (stats.Copied.Load()-copied)>>20)

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
