//go:build soak

package soak

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// churnCount is how many connections churn opens: 100,000 in a 10-minute
// soak, in proportion for a shorter one (10,000 at least).
func churnCount() int {
	return max(10_000, int(100_000*soakTime/(10*time.Minute)))
}

// inProcess is what the suite's own process holds; nproxy runs in it
// here, so that its goroutines and heap can be counted.
type inProcess struct {
	goroutines, fds int
	heapKiB         uint64
}

func (u inProcess) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, heap %.1f MiB", u.goroutines, u.fds, float64(u.heapKiB)/1024)
}

func measureSelf() inProcess {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fds, _ := os.ReadDir("/proc/self/fd")
	return inProcess{goroutines: runtime.NumGoroutine(), fds: len(fds), heapKiB: m.HeapInuse >> 10}
}

// settledSelf waits (10 s at most) until the process holds no more
// goroutines and fds than at start: connection goroutines of the echo
// server end, pooled pipes are released after a second.
func settledSelf(start inProcess) inProcess {
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := measureSelf()
		if u.goroutines <= start.goroutines && u.fds <= start.fds || time.Now().After(deadline) {
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quietSelf measures this process once its fds and goroutines stop
// falling: the warm-up's last connections are still closing when its
// clients return, and a baseline taken then would hide a leak of as many.
func quietSelf() inProcess {
	prev := measureSelf()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		u := measureSelf()
		if u.fds >= prev.fds && u.goroutines >= prev.goroutines {
			return u
		}
		prev = u
	}
	return prev
}

// churnHeapSlack is the heap growth allowed over a churn: 2 MiB, 20 bytes
// per connection of 100,000. nproxy's per-loop tables already reached the
// churn's concurrency in the warm-up, so a leak of anything a connection
// allocates (a socket, a buffer, a timer) would exceed it.
const churnHeapSlack = 2 << 20

// churn runs nproxy in this process (nproxy.Mainloop, as a Go program
// embeds it) in front of an echo server, and opens and closes connections
// with 32 clients at once, each a round trip of up to 4 KiB. After a
// warm-up of 2,000 connections, goroutines and fds must come back exactly
// and the heap within churnHeapSlack.
func churn(t *testing.T, r *row, _ time.Duration) {
	nproxytest.CaptureLog(t, 0)
	echo := startEcho(t)
	in := nproxytest.FreePort(t)
	p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: in}, &tcp.Out{Host: "127.0.0.1", Port: echo.port()})
	nproxytest.Start(t, 0, p)
	tl := &tally{}
	round := func(n int) time.Duration {
		begin := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := range 32 {
			rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(w)))
			l := load{dial: dialTCP(in), plan: func(rng *rand.Rand, _ int64) transfer {
				return transfer{seed: pattern(rng.Uint64()), size: logUniform(rng, 4<<10), early: rng.IntN(3) == 0, stall: 10 * time.Second}
			}}
			wg.Go(func() {
				for next.Add(1) <= int64(n) && time.Since(begin) < 5*time.Minute {
					tl.note(l.once(rng, 0))
				}
			})
		}
		wg.Wait()
		return time.Since(begin)
	}
	round(2000)
	start := quietSelf()
	n := churnCount()
	took := round(n)
	end := settledSelf(start)
	r.add(t, "%v in %v (%.0f/s); nproxy counted %d opened, %d closed", tl, took.Round(time.Second), float64(n)/took.Seconds(), p.Opened(), p.Closed())
	r.add(t, "in process, after the warm-up: %v; after %d more: %v", start, n, end)
	tl.exact(t)
	if tl.conns.Load() != int64(n)+2000 {
		t.Errorf("%d connections of %d ran in 5 minutes", tl.conns.Load(), n+2000)
	}
	if p.Opened() != tl.conns.Load() || p.Closed() != p.Opened() {
		t.Errorf("nproxy counted %d opened and %d closed for %d connections", p.Opened(), p.Closed(), tl.conns.Load())
	}
	if end.goroutines != start.goroutines || end.fds != start.fds {
		t.Errorf("goroutines %d → %d, fds %d → %d", start.goroutines, end.goroutines, start.fds, end.fds)
	}
	if end.heapKiB > start.heapKiB+churnHeapSlack>>10 {
		t.Errorf("heap grew from %d to %d KiB", start.heapKiB, end.heapKiB)
	}
}
