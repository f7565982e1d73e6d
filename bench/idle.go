package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func runIdle(e *env, peers []*peer) ([]*table, error) {
	n := e.cfg.idleConns
	rss, pss := lower("RSS", "KiB/conn"), lower("PSS", "KiB/conn")
	fds, leak := lower("fds", "fds/conn"), info("fds left after close", "fds")
	t := newTable(scIdle, fmt.Sprintf("Idle cost, %d proxied connections", n), fmt.Sprintf(
		"A fresh relay, one warm-up connection, then %d connections opened one at a time, each checked "+
			"to echo 64 bytes once before the next (so the listen backlog plays no part), then held idle. Growth of the relay's VmRSS, Pss (smaps_rollup) and open "+
			"fds, read from /proc and summed over its process tree, divided by the connections; then all "+
			"are closed (reset, so as to leave no TIME_WAIT behind) and the fds still open beyond the baseline after up to 2 s are counted. A relay gets "+
			"%v to open them and is given up on after %d failed connections. "+
			"RSS double-counts pages a forking relay (socat) shares with its children; PSS does not. "+
			"%s.", n, e.cfg.idleLimit, maxIdleFailures, rounds(e.cfg.idleRounds)), peers, scIdle, rss, pss, fds, leak)
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	for round := 0; round < e.cfg.idleRounds; round++ {
		for _, p := range rotated(peers, round) {
			if !p.in(scIdle) {
				continue
			}
			if err := idleOnce(e, p, echo.listen, n, t); err != nil {
				t.note(p.name, "%v", err)
				logf("   idle %s: %v", p.name, err)
			}
		}
	}
	return []*table{t}, nil
}

func idleOnce(e *env, p *peer, upstream, n int, t *table) error {
	r, err := launch(e, p, upstream)
	if err != nil {
		return err
	}
	defer r.stop()
	addr := "127.0.0.1:" + strconv.Itoa(r.listen)
	if err := shortConn(addr, make([]byte, len(ping))); err != nil {
		return fmt.Errorf("warm-up connection: %w", err)
	}
	open := func(buf []byte) (net.Conn, error) { return openOne(addr, buf) }
	return holdIdle(r, t, n, e.cfg.idleLimit, 1, open, func(c net.Conn) net.Conn { return c })
}

// holdIdle opens up to n connections to r with open (from openers
// goroutines, within limit), holds them idle, and adds to t's four metrics
// what they cost r: RSS, PSS and fds per connection, then the fds still open
// after they are reset. tcp gives a connection's TCP socket, for the reset.
func holdIdle[C any](r *running, t *table, n int, limit time.Duration, openers int,
	open func(buf []byte) (C, error), tcp func(C) net.Conn) error {
	time.Sleep(200 * time.Millisecond)
	base, basePss := measure(r.pid()), pssKiB(r.pid())
	t0 := time.Now()
	conns, failed, firstErr := openEach(open, n, limit, openers)
	setup := time.Since(t0)
	// Reset rather than close: 10,000 sockets per relay left in TIME_WAIT
	// would exhaust the ephemeral ports of the relays measured after it.
	resetAll := func() {
		for _, c := range conns {
			tc := tcp(c)
			tc.(*net.TCPConn).SetLinger(0)
			tc.Close()
		}
		conns = nil
	}
	defer resetAll()
	time.Sleep(300 * time.Millisecond)
	held, heldPss := measure(r.pid()), pssKiB(r.pid())
	if r.proc.exited() {
		return fmt.Errorf("the relay died with %d connections open", len(conns))
	}
	ok := float64(len(conns))
	if len(conns) < n {
		why := "opening them took longer than that"
		if failed > 0 {
			why = fmt.Sprintf("%d failed, the first with: %v", failed, firstErr)
		}
		t.note(r.p.name, "only %d of %d connections echoed within %v (%s)", len(conns), n, limit, why)
	}
	if len(conns) == 0 {
		return fmt.Errorf("no connection echoed: %v", firstErr)
	}
	resetAll()
	after := measure(r.pid())
	for deadline := time.Now().Add(2 * time.Second); after.fds > base.fds && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = measure(r.pid())
	}
	vals := []float64{float64(held.rssKiB-base.rssKiB) / ok, float64(heldPss-basePss) / ok,
		float64(held.fds-base.fds) / ok, float64(max(0, after.fds-base.fds))}
	for i, v := range vals {
		t.metrics[i].add(r.p.name, v)
	}
	logf("   %s %-22s %5.0f conns in %v: %6.2f KiB RSS/conn, %6.2f KiB PSS/conn, %.2f fds/conn, %.0f fds left, %d procs",
		t.key, r.p.name, ok, setup.Round(time.Millisecond), vals[0], vals[1], vals[2], vals[3], held.procs)
	return nil
}

// maxIdleFailures stops opening connections to a relay that has clearly
// reached its limit (fds, backlog) instead of waiting out every timeout.
const maxIdleFailures = 4

// openEchoed opens up to n connections one at a time, each checked to echo
// once before the next, and returns those that did. It stops at the time
// limit or after maxIdleFailures failures.
func openEchoed(addr string, n int, limit time.Duration) (conns []net.Conn, failed int, firstErr error) {
	return openEach(func(buf []byte) (net.Conn, error) { return openOne(addr, buf) }, n, limit, 1)
}

// openEach opens up to n connections of any kind with open, from openers
// goroutines, until the time limit or maxIdleFailures failures.
func openEach[C any](open func(buf []byte) (C, error), n int, limit time.Duration, openers int) (conns []C, failed int, firstErr error) {
	var mu sync.Mutex
	claimed := 0
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < openers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(ping))
			for {
				mu.Lock()
				if claimed >= n || failed >= maxIdleFailures || time.Now().After(deadline) {
					mu.Unlock()
					return
				}
				claimed++
				mu.Unlock()
				c, err := open(buf)
				mu.Lock()
				if err != nil {
					claimed--
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, failed, firstErr
}

func openOne(addr string, buf []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := echoOnce(c, buf); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// pssKiB sums Pss over the process tree: the fair memory of a relay that
// forks, since its children share most pages with it.
func pssKiB(pid int) int64 {
	var sum int64
	for _, p := range tree(pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Pss:") {
				v, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
				sum += v
				break
			}
		}
		f.Close()
	}
	return sum
}
