package loop

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockedTransport is a scripted Virtual flow that cannot send until
// opened: the misbehaviour (a shared socket's buffer full) that a real peer
// on loopback does not produce on demand.
type blockedTransport struct {
	mu   sync.Mutex
	open bool
	sent [][]byte
}

func (b *blockedTransport) Recv([]byte) (int, error) { return 0, unix.EAGAIN }
func (b *blockedTransport) Send(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0, unix.EAGAIN
	}
	b.sent = append(b.sent, bytes.Clone(p))
	return len(p), nil
}
func (b *blockedTransport) CloseWrite() error { return nil }
func (b *blockedTransport) Close() error      { return nil }

func (b *blockedTransport) received() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// TestDatagramQueueBound: datagrams a socket cannot take are queued up to
// the bound, the rest dropped and counted; once it can send, the queued
// ones go out whole and in order.
func TestDatagramQueueBound(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var dropped atomic.Uint64
	flow := &blockedTransport{}
	var client *Socket
	local := make(chan *net.UDPAddr, 1)
	l.Post(func() {
		l.DialDatagram("127.0.0.1", peer.LocalAddr().(*net.UDPAddr).Port, 0, func(server *Socket, err error) {
			if err != nil {
				t.Error(err)
				close(local)
				return
			}
			client = l.Virtual(flow)
			client.SetDatagram(DatagramOptions{Dropped: &dropped})
			l.Relay(client, server)
			sa, _ := unix.Getsockname(server.Fd())
			a := sa.(*unix.SockaddrInet4)
			local <- &net.UDPAddr{IP: a.Addr[:], Port: a.Port}
		})
	})
	to := <-local
	const n = 100
	for i := range n {
		p := make([]byte, 100)
		binary.BigEndian.PutUint32(p, uint32(i))
		peer.WriteTo(p, to)
	}
	for deadline := time.Now().Add(5 * time.Second); dropped.Load() < n-datagramQueueCount; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d dropped, want %d", dropped.Load(), n-datagramQueueCount)
		}
	}
	onLoop(l, func() {
		flow.mu.Lock()
		flow.open = true
		flow.mu.Unlock()
		l.Notify(client, false, true)
	})
	got := flow.received()
	if len(got) != datagramQueueCount || dropped.Load() != n-datagramQueueCount {
		t.Fatalf("%d sent after the block, %d dropped; want %d and %d", len(got), dropped.Load(), datagramQueueCount, n-datagramQueueCount)
	}
	for i, p := range got {
		if len(p) != 100 || binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("datagram %d: %d bytes, number %d", i, len(p), binary.BigEndian.Uint32(p))
		}
	}
}

// TestDatagramToStreamRefused: a datagram socket is never relayed to a
// stream (their boundaries would be lost): both are closed.
func TestDatagramToStreamRefused(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	onLoop(l, func() {
		stream, _ := l.Adopt(fds[0], nil)
		flow := l.Virtual(&blockedTransport{})
		flow.SetDatagram(DatagramOptions{})
		l.Relay(flow, stream)
		if !flow.Closed() || !stream.Closed() {
			t.Error("a datagram flow was relayed to a stream")
		}
	})
}

// FuzzDatagramQueue checks the queue against a plain slice: FIFO order,
// whole datagrams, and its bounds.
func FuzzDatagramQueue(f *testing.F) {
	f.Add([]byte{1, 2, 3, 0, 0, 200, 0})
	f.Add(bytes.Repeat([]byte{255}, 100))
	f.Fuzz(func(t *testing.T, ops []byte) {
		var q datagramQueue
		var model [][]byte
		bytesIn := 0
		for i, op := range ops {
			if op == 0 {
				if q.len() > 0 {
					if !bytes.Equal(q.peek(), model[0]) {
						t.Fatalf("op %d: head %d bytes, want %d", i, len(q.peek()), len(model[0]))
					}
					bytesIn -= len(model[0])
					q.pop()
					model = model[1:]
				}
				continue
			}
			p := bytes.Repeat([]byte{byte(i)}, int(op)*1100) // up to 280 KiB: past the byte bound
			ok := q.push(p)
			fits := len(model) < datagramQueueCount && bytesIn+len(p) <= datagramQueueBytes
			if ok != fits {
				t.Fatalf("op %d: push of %d bytes with %d queued (%d bytes): %v", i, len(p), len(model), bytesIn, ok)
			}
			if ok {
				model = append(model, p)
				bytesIn += len(p)
			}
			if q.len() != len(model) {
				t.Fatalf("op %d: len %d, want %d", i, q.len(), len(model))
			}
		}
	})
}

// TestListenPacketOwnPort: a UDP socket on port 0 gets a port no other
// socket holds, even with ReusePort on (SO_REUSEADDR on both would let the
// kernel pick a port already taken).
func TestListenPacketOwnPort(t *testing.T) {
	t.Parallel()
	l, err := New(Config{ReusePort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Discard()
	seen := map[int]bool{}
	for range 2000 {
		s, err := l.ListenPacket(netip.MustParseAddrPort("127.0.0.1:0"), nil)
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := unix.Getsockname(s.Fd())
		port := sa.(*unix.SockaddrInet4).Port
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}
