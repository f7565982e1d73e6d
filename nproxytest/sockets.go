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
func FillSocket(t testing.TB, fd int) []byte {
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	var filler []byte
	chunk := bytes.Repeat([]byte("filler.."), 512)
	for {
		n, err := unix.Write(fd, chunk)
		if err == unix.EAGAIN {
			return filler
		}
		if err != nil {
			t.Error(err)
			return filler
		}
		filler = append(filler, chunk[:n]...)
	}
}

// OnLoop runs f on l and returns what it returns.
func OnLoop[T any](l *loop.Loop, f func() T) T {
	c := make(chan T, 1)
	l.Post(func() { c <- f() })
	return <-c
}

// AwaitOnLoop waits up to 10 s until cond, run on l, holds.
func AwaitOnLoop(t testing.TB, l *loop.Loop, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !OnLoop(l, cond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(time.Millisecond)
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
