package nproxytest

import (
	"bytes"
	"testing"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// FillSocket writes into fd, a non-blocking socket of a running loop whose
// peer does not read, until the kernel takes no more, and returns what it
// wrote: bytes the loop writes to fd afterwards wait in its queue. It is
// how a test keeps a receiver's socket full while bytes wait before a
// splice. Call it on the loop (an AcceptFunc, a DialFunc, a Post).
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
