package nproxytest_test

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
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

// Each helper that waits for a connection's end passes or fails on each way
// a server can end it (or not): a FIN, a reset, data then a FIN, nothing.
func TestEndHelpers(t *testing.T) {
	t.Parallel()
	const d = 300 * time.Millisecond
	dialed := func(check func(testing.TB, net.Conn)) func(testing.TB, int) {
		return func(tb testing.TB, port int) {
			c := nproxytest.Dial(t, port)
			c.Write([]byte("hello"))
			check(tb, c)
		}
	}
	var got []byte // what ExpectClosed returned
	helpers := []struct {
		name  string
		check func(tb testing.TB, port int)
		fails [4]bool // closes, resets, answers, stays
		got   string  // from ExpectClosed, after answers
	}{
		{"ExpectEOF", dialed(func(tb testing.TB, c net.Conn) { nproxytest.ExpectEOF(tb, c, d) }), [4]bool{false, true, true, true}, ""},
		{"ExpectEnd", dialed(func(tb testing.TB, c net.Conn) { nproxytest.ExpectEnd(tb, c, d) }), [4]bool{false, false, true, true}, ""},
		{"ExpectClosed", dialed(func(tb testing.TB, c net.Conn) { got = nproxytest.ExpectClosed(tb, c, d) }), [4]bool{false, false, false, true}, "no"},
		{"DialClosed", func(tb testing.TB, port int) { nproxytest.DialClosed(tb, port, []byte("hello"), d) }, [4]bool{false, false, true, true}, ""},
	}
	serves := []func(*net.TCPConn){closes, resets, answers, stays}
	for _, h := range helpers {
		for i, serve := range serves {
			got = nil
			port := server(t, serve)
			if failed := fails(t, func(tb testing.TB) { h.check(tb, port) }); failed != h.fails[i] {
				t.Errorf("%s failed on server %d: %v, want %v", h.name, i, failed, h.fails[i])
			}
			if h.name == "ExpectClosed" && i == 2 && string(got) != h.got {
				t.Errorf("ExpectClosed returned %q, want %q", got, h.got)
			}
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

// ServeTCP's handlers see their connections closed when the test ends, and
// the test waits for them: none outlives it.
func TestServeTCPEndsHandlers(t *testing.T) {
	t.Parallel()
	started, returned := make(chan struct{}), make(chan struct{})
	var client net.Conn
	t.Run("serve", func(t *testing.T) {
		port := nproxytest.ServeTCP(t, func(c net.Conn) {
			defer close(returned)
			close(started)
			io.Copy(io.Discard, c) // until the connection closes
		})
		var err error
		if client, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
			t.Fatal(err)
		}
		<-started
	})
	defer client.Close() // open until the subtest's cleanup is over
	select {
	case <-returned:
	default:
		t.Fatal("a handler still ran after its test ended")
	}
}
