package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var ping = bytes.Repeat([]byte("0123456789abcdef"), 4) // 64 bytes

// startEcho starts the evio echo upstream as a sub-process.
func startEcho(e *env) (*running, error) {
	port := freePort()
	p, err := start(e.logDir, nil, e.self, "-role", "echo", "-listen", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	if err := waitListen(port, p, 5*time.Second); err != nil {
		stop(p)
		return nil, err
	}
	return &running{proc: p, listen: port}, nil
}

// withRelays runs f over the rounds with the peers of sc interleaved, each
// started in front of the echo upstream for its measurement only.
func withRelays(e *env, peers []*peer, sc string, t *table, rounds int, f func(r *running, round int) error) error {
	echo, err := startEcho(e)
	if err != nil {
		return err
	}
	defer echo.stop()
	for round := 0; round < rounds; round++ {
		eachRelay(e, peers, sc, t, round, echo.listen, func(r *running) error { return f(r, round) })
	}
	return nil
}

// eachRelay runs one round of sc: every peer in turn (the order rotated by
// round), each started fresh in front of target for its measurement only,
// so that one that went bad (Net::Proxy spinning on dead sockets) cannot
// slow the next.
func eachRelay(e *env, peers []*peer, sc string, t *table, round, target int, f func(r *running) error) {
	for _, p := range rotated(peers, round) {
		if !p.in(sc) {
			continue
		}
		r, err := launch(e, p, target)
		if err != nil {
			t.note(p.name, "did not start: %v", err)
			logf("   %s %s: did not start: %v", sc, p.name, err)
			continue
		}
		err = f(r)
		if err == nil && r.proc != nil && r.proc.exited() {
			err = fmt.Errorf("the relay died during round %d", round+1)
		}
		r.stop()
		if err != nil {
			t.note(p.name, "%v", err)
			logf("   %s %s: %v", sc, p.name, err)
		}
	}
}

// rateRound measures the connection rate of each peer of sc once.
func rateRound(e *env, peers []*peer, sc string, t *table, round, target int, rate, cpu *metric) {
	rateRoundClosing(e, peers, sc, t, round, target, closeFIN, rate, cpu)
}

// rateRoundClosing is rateRound with clients that close as closing says.
func rateRoundClosing(e *env, peers []*peer, sc string, t *table, round, target int, closing closeMode, rate, cpu *metric) {
	eachRelay(e, peers, sc, t, round, target, func(r *running) error {
		cpu0 := cpuSeconds(r.pid())
		ok, fails, firstErr := connLoopClosing(r.listen, e.cfg.concurrency, e.cfg.rateDur, closing)
		waitChildrenReaped(r.pid(), time.Second)
		rate.add(r.p.name, float64(ok)/e.cfg.rateDur.Seconds())
		if ok > 0 && r.proc != nil {
			cpu.add(r.p.name, (cpuSeconds(r.pid())-cpu0)/float64(ok)*1e6)
		}
		logf("   %s%s round %d %-18s %8.0f conn/s  (%d failed)", sc, closing.suffix(), round+1, r.p.name, float64(ok)/e.cfg.rateDur.Seconds(), fails)
		if fails > 0 {
			return fmt.Errorf("%d connections failed in round %d, first: %v", fails, round+1, firstErr)
		}
		return nil
	})
}

// echoOnce writes the 64-byte ping and reads it back.
func echoOnce(c net.Conn, buf []byte) error {
	if _, err := c.Write(ping); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf[:len(ping)])
	return err
}

// closeMode is how the connection-rate clients end each connection.
type closeMode bool

const (
	closeFIN closeMode = false // close(2): a FIN, the relay reads EOF
	closeRST closeMode = true  // SO_LINGER 0, then close(2): a reset, as many clients, balancers and health checkers do
)

// suffix is what the mode adds to the scenario's table key and log lines.
func (m closeMode) suffix() string {
	if m == closeRST {
		return "-rst"
	}
	return ""
}

// runRate measures the connection rate twice, the two ways clients close:
// a reset takes another path through a relay (an error rather than EOF on
// the client side, the server side aborted) and costs it differently.
func runRate(e *env, peers []*peer) ([]*table, error) {
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	var tables []*table
	for _, closing := range []closeMode{closeFIN, closeRST} {
		tables = append(tables, rateTable(e, peers, echo.listen, closing))
	}
	return tables, nil
}

// rateTable runs the rounds of the connection-rate scenario with clients
// that close as closing says, then profiles nproxy on the same load.
func rateTable(e *env, peers []*peer, echo int, closing closeMode) *table {
	rate, cpu := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	title, how := "Connection rate", "close"
	if closing == closeRST {
		title, how = "Connection rate, clients closing with a reset", "close with SO_LINGER 0 (a reset)"
	}
	key := scRate + closing.suffix()
	t := newTable(key, title, fmt.Sprintf(
		"%d concurrent Go clients, each in a loop: connect, write 64 bytes, read the 64-byte echo, %s; "+
			"%v per round, %s, peers interleaved. Upstream: evio echo (one loop). Relay CPU is utime+stime "+
			"(children included) from /proc/PID/stat over the window, divided by the connections.",
		e.cfg.concurrency, how, e.cfg.rateDur, rounds(e.cfg.rounds)), peers, scRate, rate, cpu)
	for round := 0; round < e.cfg.rounds; round++ {
		rateRoundClosing(e, peers, scRate, t, round, echo, closing, rate, cpu)
	}
	w := rateWorkload(e, echo)
	if closing == closeRST {
		w.what += ", clients closing with a reset"
		w.run = func(r *running) (float64, error) {
			ok, fails, err := connLoopClosing(r.listen, e.cfg.concurrency, w.window, closeRST)
			if fails > 0 {
				return 0, fmt.Errorf("%d connections failed: %v", fails, err)
			}
			return float64(ok), nil
		}
	}
	profile(e, peers, scRate, key, w)
	return t
}

// connLoop runs the short-connection clients for d, closing with a FIN.
func connLoop(port, clients int, d time.Duration) (ok, fails int64, firstErr error) {
	return connLoopClosing(port, clients, d, closeFIN)
}

// connLoopClosing runs the short-connection clients for d, closing as
// closing says.
func connLoopClosing(port, clients int, d time.Duration, closing closeMode) (ok, fails int64, firstErr error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return clientLoop(clients, d, func(buf []byte) error { return shortConnClosing(addr, buf, closing) })
}

// clientLoop runs clients goroutines, each calling once in a loop for d
// with a buffer of its own, and counts the calls that worked and failed.
func clientLoop(clients int, d time.Duration, once func(buf []byte) error) (ok, fails int64, firstErr error) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var first sync.Once
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(ping))
			for time.Now().Before(deadline) {
				if err := once(buf); err != nil {
					atomic.AddInt64(&fails, 1)
					first.Do(func() { firstErr = err })
					continue
				}
				atomic.AddInt64(&ok, 1)
			}
		}()
	}
	wg.Wait()
	return ok, fails, firstErr
}

// shortConn connects to addr, echoes once and closes with a FIN.
func shortConn(addr string, buf []byte) error { return shortConnClosing(addr, buf, closeFIN) }

// shortConnClosing connects to addr, echoes once and closes as closing
// says.
func shortConnClosing(addr string, buf []byte, closing closeMode) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if closing == closeRST {
		c.(*net.TCPConn).SetLinger(0)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return echoOnce(c, buf)
}

func runLatency(e *env, peers []*peer) ([]*table, error) {
	p50, p99, p999 := lower("p50", "µs"), lower("p99", "µs"), lower("p99.9", "µs")
	rts, cpu := higher("round trips", "k/s"), lower("relay CPU", "µs/round trip")
	t := newTable(scLatency, "Latency, 64-byte ping-pong", fmt.Sprintf(
		"%d persistent connections, each a closed loop: write 64 bytes, read the echo, record the time; "+
			"%v per round after 100 warm-up round trips per connection, %s, peers interleaved. "+
			"Percentiles are exact (every sample kept and sorted). Closed loop: a stalled reply delays the next "+
			"request instead of queueing it, so the tail is coordinated-omission optimistic for every peer alike. "+
			"With 32 requests always in flight and the clients, the echo server and the relay on the same 2 cores, "+
			"p50 is mostly 32 ÷ the round-trip rate: the CPU cost of one round trip through the whole chain. "+
			"Relay CPU is utime+stime (children included) from /proc/PID/stat over the whole test, warm-up included, "+
			"divided by the round trips timed: the relay's own part of that cost.",
		e.cfg.concurrency, e.cfg.latDur, rounds(e.cfg.rounds)), peers, scLatency, p50, p99, p999, rts, cpu)
	err := withRelays(e, peers, scLatency, t, e.cfg.rounds, func(r *running, round int) error {
		cpu0 := cpuSeconds(r.pid())
		samples, err := pingPong(r.listen, e.cfg.concurrency, e.cfg.latDur)
		if err != nil {
			return err
		}
		waitChildrenReaped(r.pid(), time.Second)
		if r.proc != nil {
			cpu.add(r.p.name, (cpuSeconds(r.pid())-cpu0)/float64(len(samples))*1e6)
		}
		slices.Sort(samples)
		us := func(p float64) float64 { return float64(percentile(samples, p)) / 1e3 }
		p50.add(r.p.name, us(0.50))
		p99.add(r.p.name, us(0.99))
		p999.add(r.p.name, us(0.999))
		rts.add(r.p.name, float64(len(samples))/e.cfg.latDur.Seconds()/1e3)
		logf("   latency round %d %-18s p50 %6.1fµs p99 %7.1fµs p99.9 %7.1fµs  %d samples",
			round+1, r.p.name, us(0.5), us(0.99), us(0.999), len(samples))
		return nil
	})
	return []*table{t}, err
}

// pingPong keeps every sample of every connection.
func pingPong(port, conns int, d time.Duration) ([]time.Duration, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// One at a time, each echoing before the next: accepting is the
	// connection-rate scenario's business, and a relay with a tiny listen
	// backlog (Net::Proxy's is 1) would otherwise leave parallel dials in SYN-ACK
	// retransmit backoff for seconds.
	cs, _, err := openEchoed(addr, conns, 10*time.Second)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	if len(cs) < conns {
		return nil, fmt.Errorf("opened only %d of %d connections (%v)", len(cs), conns, err)
	}
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(d + 5*time.Second))
			buf := make([]byte, len(ping))
			for i := 0; i < 100; i++ {
				if err := echoOnce(c, buf); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
			local := make([]time.Duration, 0, 1<<14)
			deadline := time.Now().Add(d)
			for {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				if err := echoOnce(c, buf); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return all, nil
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
