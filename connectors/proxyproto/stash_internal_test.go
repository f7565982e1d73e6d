package proxyproto

import (
	"testing"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// TestStashTakesWhatFollows: for clients that go straight to the relay
// (ListenToRelay), the header is read with what follows it in one read,
// and the socket is left empty (the bytes wait in its stash for the
// relay: TestTCPAfterHeaderInOneSegment); otherwise they stay in the
// socket, for a protocol that reads the fd itself.
func TestStashTakesWhatFollows(t *testing.T) {
	t.Parallel()
	for _, stash := range []bool{false, true} {
		l, err := loop.New(loop.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Discard()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[1])
		s, _ := l.Adopt(fds[0], nil)
		left := -1
		a := &Accept{ProxyProtocol: "v1"}
		accept, err := a.wrap(func(s *loop.Socket) { left, _ = unix.IoctlGetInt(s.Fd(), unix.SIOCINQ) }, stash)
		if err != nil {
			t.Fatal(err)
		}
		unix.Write(fds[1], []byte("PROXY TCP4 192.0.2.1 127.0.0.1 4242 80\r\nhello"))
		accept(s)
		want := len("hello")
		if stash {
			want = 0
		}
		if left != want {
			t.Errorf("stash %v: %d bytes left in the socket once the header was read, want %d", stash, left, want)
		}
	}
}
