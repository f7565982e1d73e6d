package nproxytest

import (
	"testing"
	"time"

	"github.com/nproxy/nproxy/internal/testrun"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// FillSocket writes into fd, a non-blocking socket of a running loop whose
// peer does not read, until the kernel takes no more, and returns what it
// wrote: bytes the loop writes to fd afterwards wait in its queue. It is
// how a test keeps a receiver's socket full while bytes wait before a
// splice. Call it on the loop (an AcceptFunc, a DialFunc, a Post); see
// testrun.FillSocket for when the kernel counts as full.
func FillSocket(t testing.TB, fd int) []byte {
	t.Helper()
	return testrun.FillSocket(t, fd)
}

// AwaitOnLoop waits up to 10 s until cond, run on l, holds.
func AwaitOnLoop(t testing.TB, l *loop.Loop, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		held := make(chan bool, 1)
		l.Post(func() { held <- cond() })
		select {
		case ok := <-held:
			if ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: not within 10 s", what)
		}
		select {
		case <-deadline:
			t.Fatalf("%s: not within 10 s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// Unread returns the bytes in fd's receive queue that nobody read yet.
func Unread(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return -1
	}
	return n
}
