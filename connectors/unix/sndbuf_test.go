package unix

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/loop"
	sys "golang.org/x/sys/unix"
)

// sndbufRecorder is a connectors.Handler that reports the send buffer of
// each socket it is handed.
type sndbufRecorder chan int

func (r sndbufRecorder) record(s *loop.Socket) {
	n, err := sys.GetsockoptInt(s.Fd(), sys.SOL_SOCKET, sys.SO_SNDBUF)
	if err != nil {
		n = -1
	}
	r <- n
}

func (r sndbufRecorder) Accepted(_ *loop.Loop, client *loop.Socket)     { r.record(client) }
func (r sndbufRecorder) Connected(_ *loop.Loop, _, server *loop.Socket) { r.record(server) }
func (r sndbufRecorder) Failed(_ *loop.Loop, _ *loop.Socket, err error) { r <- -2 }

// Both the accepted and the connected unix stream sockets get the larger
// send buffer, as far as net.core.wmem_max lets them (the kernel doubles it).
func TestSendBuffer(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatal(err)
	}
	wmemMax, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	want := 2 * min(sendBuffer, wmemMax)
	l, err := loop.New(loop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	path := sockPath(t, "in.sock")
	got := make(sndbufRecorder, 2)
	if err := (&In{Path: path}).Listen(l, got); err != nil {
		l.Discard()
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.Run() }()
	defer func() { l.Stop(); <-done }()
	l.Post(func() { (&Out{Path: path}).Open(l, nil, got) })
	for _, side := range []string{"first", "second"} {
		select {
		case n := <-got:
			if n != want {
				t.Errorf("%s socket: SO_SNDBUF %d, want %d (wmem_max %d)", side, n, want, wmemMax)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s socket never came", side)
		}
	}
}
