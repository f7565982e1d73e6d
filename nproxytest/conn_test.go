package nproxytest_test

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// fails runs check with a testing.TB whose Fatalf ends check's goroutine,
// and reports whether check failed.
func fails(t *testing.T, check func(tb testing.TB)) bool {
	t.Helper()
	ft := &fatalT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(ft)
	}()
	<-done
	return ft.fatal
}

// server accepts one connection on 127.0.0.1 and hands it to serve; it
// returns the port.
func server(t *testing.T, serve func(c *net.TCPConn)) int {
	t.Helper()
	ln := nproxytest.Listener(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		serve(c.(*net.TCPConn))
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// The ways a server can end or not end a connection.
var (
	closes  = func(c *net.TCPConn) { io.Copy(io.Discard, io.LimitReader(c, 5)); c.Close() }
	resets  = func(c *net.TCPConn) { io.Copy(io.Discard, io.LimitReader(c, 5)); c.SetLinger(0); c.Close() }
	answers = func(c *net.TCPConn) { c.Write([]byte("no")); c.Close() }
	stays   = func(c *net.TCPConn) {}
)

// ExpectEOF takes a clean close and nothing else.
func TestExpectEOF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(*net.TCPConn)
		fail  bool
	}{{"close", closes, false}, {"reset", resets, true}, {"data", answers, true}, {"open", stays, true}} {
		c := nproxytest.Dial(t, server(t, tc.serve))
		c.Write([]byte("hello"))
		if got := fails(t, func(tb testing.TB) { nproxytest.ExpectEOF(tb, c, 300*time.Millisecond) }); got != tc.fail {
			t.Errorf("%s: ExpectEOF failed: %v, want %v", tc.name, got, tc.fail)
		}
	}
}

// ReadEOF tells bytes before the end from other failures.
func TestReadEOFData(t *testing.T) {
	t.Parallel()
	c := nproxytest.Dial(t, server(t, answers))
	if err := nproxytest.ReadEOF(c, 5*time.Second); !errors.Is(err, nproxytest.ErrDataBeforeEOF) {
		t.Errorf("ReadEOF after data: %v, want ErrDataBeforeEOF", err)
	}
}

// ExpectClosed takes a close or a reset and returns what came before.
func TestExpectClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(*net.TCPConn)
		fail  bool
		got   string
	}{{"close", closes, false, ""}, {"reset", resets, false, ""}, {"data", answers, false, "no"}, {"open", stays, true, ""}} {
		c := nproxytest.Dial(t, server(t, tc.serve))
		c.Write([]byte("hello"))
		var got []byte
		if failed := fails(t, func(tb testing.TB) { got = nproxytest.ExpectClosed(tb, c, 300*time.Millisecond) }); failed != tc.fail || string(got) != tc.got {
			t.Errorf("%s: ExpectClosed failed: %v, returned %q; want %v, %q", tc.name, failed, got, tc.fail, tc.got)
		}
	}
}

// ExpectEnd takes a close or a reset without data, and nothing else.
func TestExpectEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(*net.TCPConn)
		fail  bool
	}{{"close", closes, false}, {"reset", resets, false}, {"data", answers, true}, {"open", stays, true}} {
		c := nproxytest.Dial(t, server(t, tc.serve))
		c.Write([]byte("hello"))
		if got := fails(t, func(tb testing.TB) { nproxytest.ExpectEnd(tb, c, 300*time.Millisecond) }); got != tc.fail {
			t.Errorf("%s: ExpectEnd failed: %v, want %v", tc.name, got, tc.fail)
		}
	}
}

// DialClosed takes a close or a reset without data, and nothing else.
func TestDialClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(*net.TCPConn)
		fail  bool
	}{{"close", closes, false}, {"reset", resets, false}, {"data", answers, true}, {"open", stays, true}} {
		port := server(t, tc.serve)
		if got := fails(t, func(tb testing.TB) { nproxytest.DialClosed(tb, port, []byte("hello"), 300*time.Millisecond) }); got != tc.fail {
			t.Errorf("%s: DialClosed failed: %v, want %v", tc.name, got, tc.fail)
		}
	}
}

// A connect that fails with EPIPE or ECONNRESET (a server that closed the
// connection before the client's connect returned) is a close for
// DialClosed; a refused one is not.
func TestClosedOnDial(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EPIPE)}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false},
		{nil, false},
	} {
		if got := nproxytest.ClosedOnDial(tc.err); got != tc.want {
			t.Errorf("ClosedOnDial(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// A refused connect is no close.
	if !fails(t, func(tb testing.TB) { nproxytest.DialClosed(tb, nproxytest.FreePort(t), nil, time.Second) }) {
		t.Error("DialClosed passed on a refused connect")
	}
}

func TestFirstDiff(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"abc", "abc", 3}, {"abc", "abd", 2}, {"ab", "abc", 2}, {"", "x", 0}} {
		if got := nproxytest.FirstDiff([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("FirstDiff(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
