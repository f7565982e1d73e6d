package main

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// slowRate is how fast the slow upstream reads.
const slowRate = 1 << 20 // bytes per second

func runSlowReader(e *env, peers []*peer) ([]*table, error) {
	// Most relays grow by a few pages here, so a ratio would divide noise.
	growth := lower("peak RSS growth", "MiB")
	growth.noRatio = true
	pushed := info("accepted from the client", "MiB")
	t := newTable(scSlowRead, "Slow reader", fmt.Sprintf(
		"The upstream reads 1 MiB/s (16 KiB reads, paced). The client writes up to %d MiB as fast as the relay "+
			"accepts it, for at most %v; the relay's VmRSS (summed over its process tree) is sampled every 20 ms "+
			"over the whole window. Peak growth is over the RSS once the connection is open. A relay with "+
			"backpressure accepts only what the socket buffers and its own bounded buffer hold. Kernel memory "+
			"(socket buffers, splice pipes) is not in RSS: the MiB accepted from the client is what the relay and "+
			"the kernel hold together. %s.",
		e.cfg.slowBytes>>20, e.cfg.slowWindow, rounds(e.cfg.slowRounds)), peers, scSlowRead, growth, pushed)
	for round := 0; round < e.cfg.slowRounds; round++ {
		for _, p := range rotated(peers, round) {
			if !p.in(scSlowRead) {
				continue
			}
			g, w, err := slowOnce(e, p)
			if err != nil {
				t.note(p.name, "%v", err)
				logf("   slowreader %s: %v", p.name, err)
				continue
			}
			growth.add(p.name, float64(g)/1024)
			pushed.add(p.name, float64(w)/(1<<20))
			logf("   slowreader round %d %-18s peak RSS +%.1f MiB, client pushed %.1f MiB",
				round+1, p.name, float64(g)/1024, float64(w)/(1<<20))
		}
	}
	return []*table{t}, nil
}

// slowOnce returns the peak RSS growth in KiB and the bytes the client wrote.
func slowOnce(e *env, p *peer) (int64, int64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(freePort()))
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	quit := make(chan struct{})
	defer close(quit)
	go slowSink(ln, quit)
	r, err := launch(e, p, ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		return 0, 0, err
	}
	defer r.stop()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.listen), 3*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond)
	base := measure(r.pid()).rssKiB
	var peak atomic.Int64
	peak.Store(base)
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v := measure(r.pid()).rssKiB; v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	end := time.Now().Add(e.cfg.slowWindow)
	c.SetWriteDeadline(end)
	chunk := make([]byte, 64<<10)
	var written int64
	for written < e.cfg.slowBytes {
		n, err := c.Write(chunk)
		written += int64(n)
		if err != nil {
			break
		}
	}
	time.Sleep(time.Until(end)) // a relay that swallowed everything may still be growing
	close(done)
	<-sampled
	if r.proc.exited() {
		return 0, written, fmt.Errorf("the relay died after accepting %d MiB", written>>20)
	}
	return peak.Load() - base, written, nil
}

// slowSink reads every connection at slowRate until quit closes.
func slowSink(ln net.Listener, quit <-chan struct{}) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 16<<10)
			start := time.Now()
			var total int64
			for {
				n, err := c.Read(buf)
				total += int64(n)
				if err != nil {
					return
				}
				select {
				case <-quit:
					return
				default:
				}
				time.Sleep(time.Until(start.Add(time.Duration(total * int64(time.Second) / slowRate))))
			}
		}()
	}
}
