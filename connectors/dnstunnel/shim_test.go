package dnstunnel

import (
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// lossShim relays UDP between the resolver and the server at to, dropping,
// duplicating and delaying (so reordering) about rate of the datagrams each
// way, and passing the server's answers through rewrite if set; it returns
// the port the resolver should forward to, and counts what it did.
func lossShim(t *testing.T, to int, rate float64, stats *shimStats, rewrite func([]byte) []byte) int {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: to}
	var mu sync.Mutex
	backs := map[string]*net.UDPConn{} // one socket towards the server per resolver address
	t.Cleanup(func() {
		front.Close()
		mu.Lock()
		for _, b := range backs {
			b.Close()
		}
		mu.Unlock()
	})
	rng := rand.New(rand.NewSource(1))
	var rngMu sync.Mutex
	mangle := func(send func([]byte)) func([]byte) {
		return func(p []byte) {
			rngMu.Lock()
			r := rng.Float64()
			rngMu.Unlock()
			p = append([]byte(nil), p...)
			switch {
			case r < rate/3:
				stats.dropped.Add(1)
			case r < 2*rate/3:
				stats.duplicated.Add(1)
				send(p)
				send(p)
			case r < rate:
				stats.delayed.Add(1)
				time.AfterFunc(time.Duration(1+rand.Intn(20))*time.Millisecond, func() { send(p) })
			default:
				send(p)
			}
		}
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			back := backs[from.String()]
			if back == nil {
				back, err = net.DialUDP("udp", nil, server)
				if err != nil {
					mu.Unlock()
					return
				}
				backs[from.String()] = back
				toResolver := mangle(func(p []byte) { front.WriteToUDP(p, from) })
				go func() {
					b := make([]byte, 65536)
					for {
						n, err := back.Read(b)
						if err != nil {
							return
						}
						p := b[:n]
						if rewrite != nil {
							p = rewrite(p)
						}
						toResolver(p)
					}
				}()
			}
			mu.Unlock()
			mangle(func(p []byte) { back.Write(p) })(buf[:n])
		}
	}()
	return front.LocalAddr().(*net.UDPAddr).Port
}

type shimStats struct{ dropped, duplicated, delayed atomic.Int64 }

// 10% of the datagrams between dnsmasq and the server are dropped,
// duplicated or reordered: the stream still arrives byte-exact.
func TestLossyPath(t *testing.T) {
	nproxytest.CaptureLog(t, 2)
	var stats shimStats
	port, in, out := startTunnel(t, nproxytest.EchoServer(t), func(t *testing.T, to int) int { return lossShim(t, to, 0.10, &stats, nil) })
	t.Cleanup(func() {
		t.Logf("in: malformed %d badmac %d refused %d unknown %d; out: malformed %d badmac %d unknown %d",
			in.Stats.Malformed.Load(), in.Stats.BadMAC.Load(), in.Stats.Refused.Load(), in.Stats.Unknown.Load(),
			out.Stats.Malformed.Load(), out.Stats.BadMAC.Load(), out.Stats.Unknown.Load())
	})
	nproxytest.EchoThrough(t, port, 256<<10, true, 30*time.Second)
	t.Logf("shim: %d dropped, %d duplicated, %d delayed", stats.dropped.Load(), stats.duplicated.Load(), stats.delayed.Load())
	if stats.dropped.Load() == 0 || stats.duplicated.Load() == 0 || stats.delayed.Load() == 0 {
		t.Fatal("the shim did not disturb the path")
	}
}
