//go:build soak

package soak

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// wan is two network namespaces, a client's and nproxy's, joined by TUN
// devices and netem in between: nproxy's side is wanServer, the client's
// wanClient; nproxy's backends listen in its namespace, beyond the path.
type wan struct {
	client, server nproxytest.Netns
	em             *netem
}

const wanClient, wanServer = "10.201.0.1", "10.201.0.2"

// newWAN sets the namespaces up; the test ends them.
func newWAN(t *testing.T, em *netem) *wan {
	if os.Geteuid() != 0 {
		nproxytest.Unavailable(t, "the WAN case needs root for network namespaces")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		nproxytest.Unavailable(t, "the WAN case needs /dev/net/tun: %v", err)
	}
	w := &wan{client: nproxytest.NewNetns(t, "client"), server: nproxytest.NewNetns(t, "proxy"), em: em}
	c, s := openTUN(t, w.client, "wan0"), openTUN(t, w.server, "wan0")
	for _, side := range []struct {
		ns         nproxytest.Netns
		self, peer string
	}{{w.client, wanClient, wanServer}, {w.server, wanServer, wanClient}} {
		side.ns.IP(t, "addr", "add", side.self, "peer", side.peer, "dev", "wan0")
		side.ns.IP(t, "link", "set", "wan0", "up")
	}
	forwarding := em.run(c, s)
	t.Cleanup(func() {
		c.Close()
		s.Close()
		if !waitGroup(forwarding, 5*time.Second) {
			t.Error("netem still forwarding 5 s after its devices closed")
		}
	})
	return w
}

// dial returns a dialer of wanServer:port from the client's namespace.
func (w *wan) dial(port int) func() (net.Conn, error) {
	return func() (c net.Conn, err error) {
		err = w.client.Do(func() error {
			c, err = net.DialTimeout("tcp", net.JoinHostPort(wanServer, strconv.Itoa(port)), 10*time.Second)
			return err
		})
		return c, err
	}
}

// listen listens on a port of every address of nproxy's namespace.
func (w *wan) listen(t *testing.T) net.Listener {
	var ln net.Listener
	err := w.server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "0.0.0.0:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// source serves downloads on ln: each client sends an 8-byte seed and
// reads that pattern until it closes.
func source(t *testing.T, ln net.Listener) {
	var wg sync.WaitGroup
	var open sync.Map
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, true)
			wg.Go(func() {
				defer open.Delete(c)
				defer c.Close()
				var seed [8]byte
				if _, err := io.ReadFull(c, seed[:]); err != nil {
					return
				}
				p := pattern(binary.LittleEndian.Uint64(seed[:]))
				buf := make([]byte, 64<<10)
				for off := int64(0); ; off += int64(len(buf)) {
					p.fill(off, buf)
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		if !waitGroup(&wg, 5*time.Second) {
			t.Error("source goroutines still running 5 s after their connections closed")
		}
	})
}

// download reads from the source through dial with streams connections at
// once for d, checking every byte, and returns how many arrived.
func download(dial func() (net.Conn, error), streams int, d time.Duration) (int64, error) {
	var total atomic.Int64
	errs := make(chan error, streams)
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			c, err := dial()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			tr := transfer{seed: pattern(rand.Uint64()), size: 1 << 50, stall: 30 * time.Second}
			var seed [8]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(tr.seed))
			if _, err := c.Write(seed[:]); err != nil {
				errs <- err
				return
			}
			// receive stops at the deadline: a timeout then is the end
			// of the measurement, not a failure.
			stop := time.AfterFunc(d, func() { c.SetReadDeadline(time.Unix(1, 0)) })
			defer stop.Stop()
			n, err := receiveUntil(c, tr, time.Now().Add(d))
			total.Add(n)
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return total.Load(), <-errs
}

// receiveUntil is receive that ends without error at end.
func receiveUntil(c net.Conn, tr transfer, end time.Time) (int64, error) {
	n, err := receive(c, tr)
	if err != nil && !time.Now().Before(end) && os.IsTimeout(unwrapAll(err)) {
		return n, nil
	}
	return n, err
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// wanCase runs nproxy in its namespace behind user-space netem (25 ms
// each way, so a 50 ms round trip; 1% of packets lost and 5% reordered,
// each way): small and bulk echoes must be byte-exact, and downloads
// through nproxy must reach 90% of the throughput of downloads straight
// from the source over the same path, measured in alternating rounds so
// that both see the same machine load.
func wanCase(t *testing.T, r *row, d time.Duration) {
	em := &netem{delay: 25 * time.Millisecond, loss: 0.01, reorder: 0.05}
	w := newWAN(t, em)
	echo := startEchoOn(t, w.listen(t))
	srcLn := w.listen(t)
	source(t, srcLn)
	srcPort := srcLn.Addr().(*net.TCPAddr).Port
	// Nothing else lives in the fresh namespace, so any port is free.
	echoIn, srcIn := 20000+rand.IntN(10000), 30000+rand.IntN(10000)
	p := startNproxyVia(t, nil, []string{"ip", "netns", "exec", string(w.server)},
		"--in", fmt.Sprintf("type=tcp,host=%s,port=%d", wanServer, echoIn), "--out", tcpSpec(echo.port()),
		"--in", fmt.Sprintf("type=tcp,host=%s,port=%d", wanServer, srcIn), "--out", tcpSpec(srcPort))
	waitListeningIn(t, p, echoIn)
	waitListeningIn(t, p, srcIn)
	idle := p.usage(t)
	var handshakes latencies
	for range 20 {
		start := time.Now()
		if c, err := w.dial(srcIn)(); err == nil {
			handshakes.add(time.Since(start))
			c.Close()
		}
	}
	r.add(t, "netem: %v each way, %.0f%% loss, %.0f%% reordered; TCP handshake to nproxy %v", em.delay, em.loss*100, em.reorder*100, &handshakes)
	if p50 := handshakes.quantile(0.5); p50 < 2*em.delay {
		t.Errorf("a handshake took %v, less than the round trip netem makes: is the path emulated?", p50)
	}

	small, bulk := &tally{}, &tally{}
	smallPlan := func(rng *rand.Rand, _ int64) transfer {
		return transfer{seed: pattern(rng.Uint64()), size: logUniform(rng, 4<<10), early: rng.IntN(3) == 0, stall: 30 * time.Second}
	}
	load{dial: w.dial(echoIn), plan: smallPlan}.run([]phase{{conns: 16, d: max(2*time.Second, d/8)}}, small, rand.Uint64())
	bulkSize := min(16<<20, max(1<<20, int64(d/(10*time.Second))<<20))
	bulkPlan := func(rng *rand.Rand, _ int64) transfer {
		return transfer{seed: pattern(rng.Uint64()), size: bulkSize, early: rng.IntN(2) == 0, stall: 30 * time.Second}
	}
	// d of a millisecond: each of the 4 clients runs one transfer.
	load{dial: w.dial(echoIn), plan: bulkPlan}.run([]phase{{conns: 4, d: time.Millisecond}}, bulk, rand.Uint64())
	r.add(t, "small echoes: %v", small)
	r.add(t, "bulk echoes of %s: %v", mib(bulkSize), bulk)
	small.exact(t)
	bulk.exact(t)

	const streams, each = 4, 5 * time.Second
	// At least three rounds: with 1% loss a single 5 s download swings by
	// 20% either way (87% to 131% of direct seen in one-round runs).
	rounds := max(3, int(d*6/10/(2*each)))
	var direct, proxied int64
	for i := range rounds {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, viaProxy := range order {
			dial, sum := w.dial(srcPort), &direct
			if viaProxy {
				dial, sum = w.dial(srcIn), &proxied
			}
			n, err := download(dial, streams, each)
			if err != nil {
				t.Errorf("download (through nproxy: %v): %v", viaProxy, err)
			}
			*sum += n
		}
	}
	secs := (time.Duration(rounds) * each).Seconds()
	ratio := float64(proxied) / float64(max(direct, 1))
	r.add(t, "downloads, %d streams, %d rounds of %v: direct %.0f KiB/s, through nproxy %.0f KiB/s (%.0f%%)",
		streams, rounds, each, float64(direct)/1024/secs, float64(proxied)/1024/secs, ratio*100)
	r.add(t, "netem moved %d packets, dropped %d, reordered %d", em.moved.Load(), em.dropped.Load(), em.reordered.Load())
	if ratio < 0.9 {
		t.Errorf("nproxy's throughput is %.0f%% of a direct connection's over the same path", ratio*100)
	}
	end := p.settled(t, idle)
	r.add(t, "nproxy idle %v; end %v", idle, end)
	checkFDs(t, p, idle, end)
}
