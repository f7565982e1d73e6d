package udp

import (
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
	"golang.org/x/sys/unix"
)

var (
	idleFlows       = flag.Int("idle-flows", 2000, "idle flows TestIdleFlowHeap opens (the issue's figure is for 10,000)")
	idleHeapProfile = flag.String("idle-heap-profile", "", "write the heap profile with the idle flows open to this file")
)

// maxIdleFlowHeap bounds the Go heap an idle flow keeps alive, measured
// after a GC. The goal is 1 KiB of memory per idle flow besides its socket,
// and the process's RSS is the live heap plus what the collector lets grow
// between cycles, so the live heap must stay well under it. What a flow
// keeps (docs/udp.md, "Memory of an idle flow"): two sockets of 256 bytes,
// a flow of 64, two datagram states of 24, 16 to 24 bytes of the table's
// index and 8 to 16 of the loop's fd table: 648 to 664 (654 measured at
// 10,000 flows, 655 to 660 at 2,000 with and without -race). The bound
// leaves room for noise and none for loop.Socket to move to the next size
// class (288 bytes) or the flow to 80 (TestFlowSize): a slot that only some
// sockets need belongs in its extra.
const maxIdleFlowHeap = 700

// TestFlowSize keeps a flow in the 64-byte size class of Go's allocator:
// one byte more and every idle flow takes 80.
func TestFlowSize(t *testing.T) {
	if n := unsafe.Sizeof(flow{}); n > 64 {
		t.Fatalf("a flow takes %d bytes, more than 64", n)
	}
}

// TestIdleFlowHeap opens idle flows through a udp in and a udp out on one
// loop, each checked to echo once, and bounds the heap they keep per flow.
// It is not parallel: the heap is the whole process's, so it runs while no
// other test of the package does (go test holds parallel tests until the
// sequential ones are done).
func TestIdleFlowHeap(t *testing.T) {
	m := measureIdleFlows(t, *idleFlows)
	t.Logf("%d idle flows: heap %.0f B/flow live (HeapAlloc), %.0f B/flow in use (HeapInuse), RSS %.0f B/flow",
		*idleFlows, m.heapAlloc, m.heapInuse, m.rss)
	if m.heapAlloc > maxIdleFlowHeap {
		t.Fatalf("an idle flow keeps %.0f bytes of heap, more than %d", m.heapAlloc, maxIdleFlowHeap)
	}
}

// flowMemory is the growth of the process's memory per flow.
type flowMemory struct{ heapAlloc, heapInuse, rss float64 }

// measureIdleFlows opens n idle flows and returns what they cost. Each
// comes from an address of its own in 127.77.0.0/16, so that the test
// holds no client socket once its flow has echoed (the relay holds one
// connected socket per flow, and the fd limit is shared).
func measureIdleFlows(t *testing.T, n int) flowMemory {
	if n > 1<<16-2 {
		t.Fatalf("at most %d flows", 1<<16-2)
	}
	in := &In{Host: "127.0.0.1", Timeout: time.Hour, MaxFlows: n + 1}
	in.Port = udpPort(t, in.Host)
	echo := nproxytest.UDPEcho(t, "127.0.0.1")
	l, err := loop.New(loop.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.RunLoop(t, l, nproxy.New(in, out(echo)))
	relay := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(in.Port))
	// The first flow allocates what the loop and the table keep for all
	// (read buffers): it is not an idle flow's cost.
	openFlows(t, relay, 0, 1)
	before := memNow(t)
	const batch = 256
	for i := 1; i <= n; i += batch {
		openFlows(t, relay, i, min(batch, n+1-i))
	}
	after := memNow(t)
	if *idleHeapProfile != "" {
		writeHeapProfile(t, *idleHeapProfile)
	}
	if got := in.Counts(); got.FlowsOpened != uint64(n+1) || got.FlowsClosed != 0 {
		t.Fatalf("counts %+v, want %d flows open", got, n+1)
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return flowMemory{
		heapAlloc: per(after.HeapAlloc, before.HeapAlloc),
		heapInuse: per(after.HeapInuse, before.HeapInuse),
		rss:       per(after.rss, before.rss),
	}
}

// openFlows sends a datagram to relay from count addresses 127.77.x.y,
// starting at the first-th, and waits for each one's echo.
func openFlows(t *testing.T, relay netip.AddrPort, first, count int) {
	fds := make([]int, 0, count)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	to := &unix.SockaddrInet4{Port: int(relay.Port()), Addr: relay.Addr().As4()}
	for i := first; i < first+count; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		tv := unix.NsecToTimeval(int64(5 * time.Second))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 77, byte(i >> 8), byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendto(fd, []byte("idle"), 0, to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	for i, fd := range fds {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		for err == unix.EINTR { // the Go runtime's preemption signal, SIGURG
			n, _, err = unix.Recvfrom(fd, buf, 0)
		}
		if err != nil || string(buf[:n]) != "idle" {
			t.Fatalf("flow %d: no echo (%v)", first+i, err)
		}
	}
}

// memSample is the process's memory at one moment, after a GC.
type memSample struct {
	runtime.MemStats
	rss uint64 // bytes, from /proc/self/statm
}

func memNow(t *testing.T) memSample {
	// Two cycles: the first one's finalizers (closed test sockets) free
	// more for the second.
	runtime.GC()
	runtime.GC()
	var m memSample
	runtime.ReadMemStats(&m.MemStats)
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(statm))
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	m.rss = pages * uint64(os.Getpagesize())
	return m
}

func writeHeapProfile(t *testing.T, name string) {
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}
