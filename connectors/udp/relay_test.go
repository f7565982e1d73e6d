package udp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// TestEchoManyClients: 200 clients × 500 datagrams of random sizes (1 to
// 1,400 bytes) through a real echo server; each client gets exactly its own
// datagrams back, in order. At most 32 datagrams are in flight at once, so
// that no socket buffer on the path overflows (UDP would drop, rightly).
func TestEchoManyClients(t *testing.T) {
	t.Parallel()
	const clients, each = 200, 500
	r := startRelay(t, &In{}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	inFlight := make(chan struct{}, 32)
	conns := make([]*net.UDPConn, clients)
	for id := range clients {
		conns[id] = client(t, r.addr)
	}
	runAll(t, clients, func(id int) error { return echoClient(conns[id], uint32(id), each, inFlight) })
	got := r.expectFlows(t, clients, each)
	if got.BytesIn != got.BytesOut {
		t.Fatalf("bytes in %d, out %d", got.BytesIn, got.BytesOut)
	}
}

// echoClient sends n datagrams, each marked with its client and sequence
// number, and expects each back unchanged before sending the next.
func echoClient(c *net.UDPConn, id uint32, n int, inFlight chan struct{}) error {
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	buf := make([]byte, 2048)
	for seq := range n {
		p := make([]byte, 1+rng.IntN(1400))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if len(p) >= 8 {
			binary.BigEndian.PutUint32(p, id)
			binary.BigEndian.PutUint32(p[4:], uint32(seq))
		}
		inFlight <- struct{}{}
		_, err := c.Write(p)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var k int
			k, err = c.Read(buf)
			if err == nil && !bytes.Equal(buf[:k], p) {
				err = fmt.Errorf("got %d bytes %x..., want %d bytes %x...", k, buf[:min(k, 8)], len(p), p[:min(len(p), 8)])
			}
		}
		<-inFlight
		if err != nil {
			return fmt.Errorf("client %d, datagram %d: %w", id, seq, err)
		}
	}
	return nil
}

// TestBoundariesKept: datagrams sent back to back arrive one by one, never
// merged, whatever their sizes, empty ones and 65,507-byte ones included.
func TestBoundariesKept(t *testing.T) {
	t.Parallel()
	r := startRelay(t, &In{}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	c := client(t, r.addr)
	c.SetReadBuffer(1 << 20)
	sizes := []int{0, 1, 1400, 65507, 3, 0, 9000}
	for _, n := range sizes {
		if _, err := c.Write(bytes.Repeat([]byte{byte(n)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 70000)
	for _, n := range sizes {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil || k != n || !bytes.Equal(buf[:k], bytes.Repeat([]byte{byte(n)}, n)) {
			t.Fatalf("want a datagram of %d bytes, got %d (%v)", n, k, err)
		}
	}
}

// TestIdleFlowsExpireAndFdsReturn: flows to a server that never answers
// expire after the timeout, each counted as a closed connection, and the
// process's file descriptors come back to where they were. Not parallel:
// it counts the process's fds.
func TestIdleFlowsExpireAndFdsReturn(t *testing.T) {
	mute := nproxytest.UDPServer(t, "127.0.0.1", func([]byte) []byte { return nil })
	r := startRelay(t, &In{Timeout: 200 * time.Millisecond}, out(mute))
	var clients []*net.UDPConn
	for range 50 {
		clients = append(clients, client(t, r.addr))
	}
	base := nproxytest.OpenFDs(t)
	for _, c := range clients {
		c.Write([]byte("anyone?"))
	}
	waitCounts(t, r.in, "50 flows open", func(c Counts) bool { return c.FlowsOpened == 50 })
	if n := nproxytest.OpenFDs(t); n < base+50 {
		t.Fatalf("%d fds with 50 flows open, %d before: no socket per flow?", n, base)
	}
	start := time.Now()
	got := waitCounts(t, r.in, "every flow expired", func(c Counts) bool { return c.FlowsClosed == 50 })
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("flows closed after %v, before their 200ms timeout", waited)
	}
	if got.FlowsEvicted != 0 || r.proxy.Opened() != 50 || r.proxy.Closed() != 50 {
		t.Fatalf("counts %+v, proxy opened %d closed %d", got, r.proxy.Opened(), r.proxy.Closed())
	}
	deadline := time.Now().Add(5 * time.Second)
	for nproxytest.OpenFDs(t) > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds after every flow expired, %d before", nproxytest.OpenFDs(t), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestActiveFlowStays: a flow that keeps talking outlives its timeout.
func TestActiveFlowStays(t *testing.T) {
	t.Parallel()
	r := startRelay(t, &In{Timeout: 500 * time.Millisecond}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	c := client(t, r.addr)
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		exchange(t, c, []byte("ping"))
	}
	if got := r.in.Counts(); got.FlowsOpened != 1 || got.FlowsClosed != 0 {
		t.Fatalf("a busy flow was closed: %+v", got)
	}
}

// TestEvictionLRU: with max_flows 5, the sixth client evicts the least
// recently used flow, not a busy one; an evicted client gets a new flow.
func TestEvictionLRU(t *testing.T) {
	t.Parallel()
	r := startRelay(t, &In{MaxFlows: 5}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	var cs []*net.UDPConn
	for i := range 5 {
		cs = append(cs, client(t, r.addr))
		exchange(t, cs[i], []byte("hello"))
	}
	exchange(t, cs[0], []byte("still here")) // cs[1] is now the least recently used
	sixth := client(t, r.addr)
	exchange(t, sixth, []byte("room?"))
	got := waitCounts(t, r.in, "one eviction", func(c Counts) bool { return c.FlowsEvicted == 1 && c.FlowsClosed == 1 })
	if got.FlowsOpened != 6 {
		t.Fatalf("counts %+v", got)
	}
	exchange(t, cs[0], []byte("me too"))
	if got := r.in.Counts(); got.FlowsOpened != 6 {
		t.Fatalf("the busy flow was evicted: %+v", got)
	}
	exchange(t, cs[1], []byte("back"))
	if got := r.in.Counts(); got.FlowsOpened != 7 || got.FlowsEvicted != 2 {
		t.Fatalf("the evicted client did not get a new flow: %+v", got)
	}
	var metrics connectors.FlowCounter = r.in // what /metrics reads
	if active, opened := metrics.Flows(); active != 5 || opened != 7 {
		t.Fatalf("Flows() = %d active, %d opened; want 5, 7", active, opened)
	}
}

// TestFloodOfSourceAddresses: 2,000 new client addresses against max_flows
// 64: at most 64 flows (and server sockets) exist at any time.
func TestFloodOfSourceAddresses(t *testing.T) {
	t.Parallel()
	mute := nproxytest.UDPServer(t, "127.0.0.1", func([]byte) []byte { return nil })
	r := startRelay(t, &In{MaxFlows: 64}, out(mute))
	const n = 2000
	for i := range n {
		c, err := net.Dial("udp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("flood"))
		c.Close()
		if i%50 == 49 {
			// In waves that the listening socket's buffer holds: what the
			// kernel drops for want of room is not the relay's to count.
			sent := uint64(i + 1)
			got := waitCounts(t, r.in, "a wave received", func(c Counts) bool { return c.DatagramsIn == sent })
			if open := got.FlowsOpened - got.FlowsClosed; open > 64 {
				t.Fatalf("%d flows open, max 64: %+v", open, got)
			}
		}
	}
	got := r.in.Counts()
	if open := got.FlowsOpened - got.FlowsClosed; open > 64 || got.FlowsEvicted != got.FlowsOpened-64 {
		t.Fatalf("%d flows open, max 64: %+v", open, got)
	}
}

// TestDatagramTooLong: max_datagram holds both ways; what is longer is
// dropped, counted and logged at debug.
func TestDatagramTooLong(t *testing.T) {
	t.Parallel()
	server := nproxytest.UDPServer(t, "127.0.0.1", func(p []byte) []byte {
		if string(p) == "big reply" {
			return make([]byte, 101)
		}
		return p
	})
	r := startRelay(t, &In{MaxDatagram: 100}, out(server))
	c := client(t, r.addr)
	c.Write(make([]byte, 101))
	if !silent(c, 200*time.Millisecond) {
		t.Fatal("a 101-byte datagram passed max_datagram 100")
	}
	if got := waitCounts(t, r.in, "one drop", func(c Counts) bool { return c.Dropped == 1 }); got.FlowsOpened != 0 {
		t.Fatalf("a datagram too long opened a flow: %+v", got)
	}
	r.logs.WaitFor(t, "datagram too long")
	exchange(t, c, make([]byte, 100))
	c.Write([]byte("big reply"))
	if !silent(c, 200*time.Millisecond) {
		t.Fatal("a 101-byte reply passed max_datagram 100")
	}
	waitCounts(t, r.in, "two drops", func(c Counts) bool { return c.Dropped == 2 })
	exchange(t, c, []byte("still fine"))
}

// TestPortUnreachableClosesFlow: a server port with nothing behind it
// answers with ICMP port unreachable; the flow closes at once instead of
// spinning or waiting for its timeout.
func TestPortUnreachableClosesFlow(t *testing.T) {
	t.Parallel()
	r := startRelay(t, &In{Timeout: time.Hour}, out(udpPort(t, "127.0.0.1")))
	c := client(t, r.addr)
	c.Write([]byte("anyone?"))
	waitCounts(t, r.in, "flow closed by ECONNREFUSED", func(c Counts) bool { return c.FlowsOpened == 1 && c.FlowsClosed == 1 })
	r.logs.WaitFor(t, "connection refused")
	if r.proxy.Closed() != 1 {
		t.Fatalf("proxy counted %d closed", r.proxy.Closed())
	}
}

// TestDualStack: host=* takes IPv4 and IPv6 clients, each answered from the
// right family; the server is on ::1.
func TestDualStack(t *testing.T) {
	t.Parallel()
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		nproxytest.Unavailable(t, "no IPv6 loopback on this machine: %v", err)
	} else {
		c.Close()
	}
	r := startRelay(t, &In{Host: "*"}, &Out{Host: "::1", Port: nproxytest.UDPEcho(t, "::1")})
	for _, host := range []string{"127.0.0.1", "::1"} {
		c := client(t, net.JoinHostPort(host, fmt.Sprint(r.in.Port)))
		if got := exchange(t, c, []byte("via "+host)); string(got) != "via "+host {
			t.Fatalf("%s: got %q", host, got)
		}
	}
	if got := r.in.Counts(); got.FlowsOpened != 2 {
		t.Fatalf("counts %+v", got)
	}
}

// TestHookSeesOneDatagram: the in hook is called once per datagram, with
// that datagram alone, and may rewrite or drop it.
func TestHookSeesOneDatagram(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var sizesOK atomic.Bool
	sizesOK.Store(true)
	hook := func(data []byte, s *loop.Socket) []byte {
		calls.Add(1)
		if !strings.HasPrefix(string(data), "d") {
			sizesOK.Store(false)
		}
		if string(data) == "drop" {
			return nil
		}
		return bytes.ToUpper(data)
	}
	r := startRelay(t, &In{Hook: hook}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	c := client(t, r.addr)
	for i := range 10 {
		want := fmt.Sprintf("d%d", i)
		if got := exchange(t, c, []byte(want)); string(got) != strings.ToUpper(want) {
			t.Fatalf("got %q", got)
		}
	}
	c.Write([]byte("drop"))
	if !silent(c, 200*time.Millisecond) {
		t.Fatal("a datagram the hook dropped was sent")
	}
	if calls.Load() != 11 || !sizesOK.Load() {
		t.Fatalf("hook called %d times (want 11), one datagram each: %v", calls.Load(), sizesOK.Load())
	}
}

// TestFirstBurstHeld: a client's first 64 datagrams, sent back to back
// before its flow has a server socket, are held and all delivered, in order.
// The server is named, so that its socket is opened after a resolution off
// the loop (an IP address is connected at once: nothing would be held), and
// listens on every address, so that localhost reaches it as 127.0.0.1 or ::1.
func TestFirstBurstHeld(t *testing.T) {
	t.Parallel()
	r := startRelay(t, &In{}, &Out{Host: "localhost", Port: nproxytest.UDPEcho(t, "::")})
	c := client(t, r.addr)
	const n = batchRounds * batchSize
	for i := range n {
		c.Write([]byte{byte(i)})
	}
	buf := make([]byte, 16)
	for i := range n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil || k != 1 || buf[0] != byte(i) {
			t.Fatalf("echo %d: %v %v (counts %+v)", i, buf[:max(k, 0)], err, r.in.Counts())
		}
	}
}

// TestFlowNamedByClient: a flow's client socket keeps no name, yet its nick
// and RemoteAddr (what logs, hooks and the access log see) are the client's
// address, asked of the flow when needed.
func TestFlowNamedByClient(t *testing.T) {
	t.Parallel()
	names := make(chan string, 1)
	hook := func(data []byte, s *loop.Socket) []byte {
		select {
		case names <- s.Nick() + " " + s.RemoteAddr().String():
		default:
		}
		return data
	}
	r := startRelay(t, &In{Hook: hook}, out(nproxytest.UDPEcho(t, "127.0.0.1")))
	c := client(t, r.addr)
	exchange(t, c, []byte("who am I"))
	me := c.LocalAddr().String()
	if got := <-names; got != me+" "+me {
		t.Fatalf("nick and remote address %q, want %q twice", got, me)
	}
}
