package loop

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Short messages of a plain pair are copied, not spliced: splicing 64 bytes
// costs more than copying them. Once a read fills the copy window the pair
// is a stream, and the rest of it is spliced; the stream's bytes and the
// short ones before it arrive in order.
func TestSpliceOnlyStreams(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	client, server := relayedPair(t, l, nil)
	defer unix.Close(client)
	defer unix.Close(server)
	stats := l.Stats()

	small := []byte("a short message, copied")
	got := make([]byte, 4<<20)
	for i := 0; i < 10; i++ {
		if _, err := unix.Write(client, small); err != nil {
			t.Fatal(err)
		}
		if err := readFull(server, got[:len(small)]); err != nil {
			t.Fatal(err)
		}
	}
	if n := stats.Spliced.Load(); n != 0 {
		t.Fatalf("%d bytes of short messages spliced, want 0", n)
	}
	if n := stats.Copied.Load(); n != 10*uint64(len(small)) {
		t.Fatalf("%d bytes copied, want %d", n, 10*len(small))
	}

	bulk := randomBytes(len(got))
	go unix.Write(client, bulk) // blocking: it returns once the relay took it all
	if err := readFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bulk) {
		t.Fatal("the stream arrived changed")
	}
	// At most the reads before one filled the window were copied.
	if n := stats.Spliced.Load(); n < uint64(len(bulk)-4*copyWindow) {
		t.Fatalf("%d bytes of a %d-byte stream spliced", n, len(bulk))
	}
}

// An accepted TCP client has TCP_NODELAY, which it inherits from its
// listener rather than getting by a setsockopt of its own.
func TestAcceptedClientHasNoDelay(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	accepted := make(chan int, 1)
	ln, err := l.Listen(netip.MustParseAddrPort("127.0.0.1:0"), func(c *Socket) {
		v, err := unix.GetsockoptInt(c.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil {
			v = -1
		}
		accepted <- v
		l.Close(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	runLoop(t, l)
	onLoop(l, func() {}) // Run has started: the listener listens
	c, err := net.Dial("tcp", ln.Nick())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case v := <-accepted:
		if v != 1 {
			t.Fatalf("accepted client's TCP_NODELAY is %d, want 1", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no client accepted within 5 s")
	}
}
