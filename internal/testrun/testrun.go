// Package testrun holds the test helpers that need no nproxy package, so
// that loop's own tests and nproxytest (which imports loop) share one copy
// without an import cycle.
//
//	l, _ := loop.New(loop.Config{})
//	testrun.InBackground(t, l) // stopped, and checked, when the test ends
package testrun

import (
	"bytes"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Runner is what runs until it is stopped, as a loop.Loop does.
type Runner interface {
	Run() error
	Stop()
}

// InBackground runs r on a goroutine until the test ends: then it stops r,
// and fails t if Run fails or does not return within 5 s.
func InBackground(t testing.TB, r Runner) {
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	t.Cleanup(func() {
		r.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the loop did not stop within 5 s")
		}
	})
}

// FillSocket writes into fd, a non-blocking socket whose peer does not
// read, until the kernel takes no more, and returns what it wrote: bytes
// written to fd afterwards wait in its queue.
//
// A first EAGAIN is not the end: the kernel goes on moving queued bytes
// into the peer's receive window, which frees room. So it waits until the
// send queue (SIOCOUTQ) stops shrinking, and fills again, until a write
// finds the queue settled and full.
func FillSocket(t testing.TB, fd int) []byte {
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	var filler []byte
	chunk := bytes.Repeat([]byte("filler.."), 512)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, err := unix.Write(fd, chunk)
		switch {
		case err == unix.EAGAIN:
			if settled(fd) {
				return filler
			}
		case err != nil:
			t.Error(err)
			return filler
		default:
			filler = append(filler, chunk[:n]...)
		}
	}
	t.Error("FillSocket: the send queue did not settle within 5 s")
	return filler
}

// settled waits up to 50 ms for fd's send queue to shrink, and says
// whether it stayed as it was.
func settled(fd int) bool {
	before, _ := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	for range 50 {
		time.Sleep(time.Millisecond)
		if now, _ := unix.IoctlGetInt(fd, unix.SIOCOUTQ); now != before {
			return false
		}
	}
	return true
}

// OpenFDs counts the file descriptors the test process holds open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
