package nproxytest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/internal/testrun"
)

// ConnDeadline bounds every read and write on a connection from Dial, so
// that a test whose proxy stalls fails instead of hanging until the test
// binary's timeout.
const ConnDeadline = 30 * time.Second

// Dial connects to port of 127.0.0.1 within 5 s, with ConnDeadline set,
// and closes the connection when the test ends.
func Dial(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ConnDeadline))
	return c.(*net.TCPConn)
}

// ErrDataBeforeEOF is what ReadEOF returns when bytes came where the end of
// the stream was due.
var ErrDataBeforeEOF = errors.New("bytes where the end of stream was due")

// ReadEOF reads c for up to d and returns nil if the stream ends cleanly
// there; it returns ErrDataBeforeEOF if a byte comes first, and the read's
// error for a reset or a timeout, which are no clean end.
func ReadEOF(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return ErrDataBeforeEOF
	case err != io.EOF:
		return fmt.Errorf("want EOF within %v: %w", d, err)
	}
	return nil
}

// ExpectEOF fails t unless c reads a clean end of stream within d, with no
// byte before it: a reset or a timeout is not an EOF.
func ExpectEOF(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	if err := ReadEOF(c, d); err != nil {
		t.Fatal(err)
	}
}

// ExpectClosed reads c until the far side closes it, with a FIN or a
// reset, within d, and returns what came before; it fails t if c stays
// open (or fails otherwise).
func ExpectClosed(t testing.TB, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	if err != nil && !IsReset(err) {
		t.Fatalf("not closed within %v: %v (read %q)", d, err, got)
	}
	return got
}

// IsTimeout reports whether err is a deadline that passed.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ExpectEnd fails t unless the far side closes c, with a FIN or a reset,
// within d and without a byte before.
func ExpectEnd(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	if got := ExpectClosed(t, c, d); len(got) > 0 {
		t.Fatalf("read %q where the connection should have ended", got)
	}
}

// IsReset reports whether err says that the peer reset the connection.
func IsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// DialClosed connects to port of 127.0.0.1, sends send, and fails t unless
// the far side closes the connection within d without sending a byte.
//
// A server that refuses at once may close before the client's connect has
// returned: the connection is still in the client's accept path, and Linux
// reports the FIN followed by a reset as EPIPE (or ECONNRESET) from connect
// itself. DialClosed counts that as closed too.
func DialClosed(t testing.TB, port int, send []byte, d time.Duration) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if ClosedOnDial(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(send) // the far side may have closed already: the read says
	ExpectEnd(t, c, d)
}

// ClosedOnDial reports whether a dial error says that the far side closed
// the connection while it was being set up.
func ClosedOnDial(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// FirstDiff returns the index of the first byte where a and b differ, or
// the length of the shorter when one is a prefix of the other.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// OpenFDs counts the file descriptors the test process holds open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	return testrun.OpenFDs(t)
}

// Sockets lists the socket descriptors of the test process, by number.
func Sockets() []string {
	fds, _ := os.ReadDir("/proc/self/fd")
	var list []string
	for _, fd := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasPrefix(target, "socket:") {
			list = append(list, fd.Name())
		}
	}
	return list
}
