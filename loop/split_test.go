package loop

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// deadlineFile wraps a non-blocking fd in an os.File whose reads and writes
// fail after 10 s, so that a relay that stalls fails the test instead of
// hanging it.
func deadlineFile(t *testing.T, fd int) *os.File {
	t.Helper()
	f := os.NewFile(uintptr(fd), "test end")
	f.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { f.Close() })
	return f
}

// sendAndEnd writes data to f and then ends that direction with end.
func sendAndEnd(f *os.File, data []byte, end func() error) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := f.Write(data)
		if err == nil {
			err = end()
		}
		done <- err
	}()
	return done
}

func expectAll(t *testing.T, what string, f *os.File, want []byte, sent chan error) {
	t.Helper()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes of %d, err %v", what, len(got), len(want), err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("%s: sending: %v", what, err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// A split socket made of two pipes (a process's stdin and stdout, as a
// parent sees them) relays to a socket by splice both ways, byte-exact and
// straight across (no pipe from the pool in the middle),
// and carries each direction's EOF on its own: the socket's shutdown closes
// the output pipe while the input pipe is still open, and the input pipe's
// EOF is a shutdown of the socket.
func TestSplitPipesSplice(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	inR, inW := pipe(t)   // the test writes inW, the loop reads inR
	outR, outW := pipe(t) // the loop writes outW, the test reads outR
	peer, mine := socketPair(t)
	onLoop(l, func() {
		s, _ := l.AdoptSplit(inR, outW, nil)
		m, _ := l.Adopt(mine, nil)
		s.Raw, m.Raw = true, true
		l.Relay(s, m)
	})
	peerF, inF, outF := deadlineFile(t, peer), deadlineFile(t, inW), deadlineFile(t, outR)
	up, down := randomBytes(3<<20), randomBytes(3<<20)
	sc, _ := peerF.SyscallConn()
	shutPeer := func() error {
		var err error
		sc.Control(func(fd uintptr) { err = unix.Shutdown(int(fd), unix.SHUT_WR) })
		return err
	}
	expectAll(t, "socket to pipe, the pipe in still open", outF, down, sendAndEnd(peerF, down, shutPeer))
	expectAll(t, "pipe to socket", peerF, up, sendAndEnd(inF, up, inF.Close))
	if n := l.Stats().Spliced.Load(); n < uint64(len(up)+len(down)) {
		t.Fatalf("spliced %d bytes, want %d", n, len(up)+len(down))
	}
	if ino := pooledPipe(t, l); ino != 0 {
		t.Fatal("a pipe from the pool was used between a pipe and a socket")
	}
}

// Regular files are refused by epoll: a split socket on files is served as
// always ready, and relays all of the input file and into the output file.
func TestSplitFiles(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	dir := t.TempDir()
	in := bytes.Repeat([]byte("from the file\n"), 100000)
	if err := os.WriteFile(filepath.Join(dir, "in"), in, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := unix.Open(filepath.Join(dir, "in"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := unix.Open(filepath.Join(dir, "out"), unix.O_WRONLY|unix.O_CREAT|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	peer, mine := socketPair(t)
	onLoop(l, func() {
		s, _ := l.AdoptSplit(r, w, nil)
		m, _ := l.Adopt(mine, nil)
		m.Raw = true
		l.Relay(s, m)
	})
	peerF := deadlineFile(t, peer)
	out := bytes.Repeat([]byte("to the file\n"), 100000)
	sent := sendAndEnd(peerF, out, func() error { return nil })
	got, err := io.ReadAll(peerF) // EOF: the input file is over
	if err != nil || !bytes.Equal(got, in) {
		t.Fatalf("file to socket: %d bytes of %d, err %v", len(got), len(in), err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	var written []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if written, _ = os.ReadFile(filepath.Join(dir, "out")); len(written) >= len(out) {
			break
		}
	}
	if !bytes.Equal(written, out) {
		t.Fatalf("socket to file: %d bytes of %d", len(written), len(out))
	}
}
