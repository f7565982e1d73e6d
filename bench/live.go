package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The live scenario (issue 18, item 4): 9,990 connections open at once
// through the relay, each doing a 64-byte ping-pong once a second (about
// 10,000 round trips/s in all), against haproxy at the same count. 9,990 is
// what a process's 20,000 fds hold at two sockets per pair, with a few to
// spare; the clients, which hold one socket per pair, are a sub-process of
// their own (-role live-client) so that they do not eat the harness's fds.

const (
	scLive  = "live"
	scLive1 = "live-1"
	scLive2 = "live-2"
	// livePairs fills the relay's 20,000 fds. nproxy's default maxconn,
	// sized for a pipe pair per connection, would stop at half, so the
	// scenario sets it to twice the pairs (a file with `maxconn`): with
	// --loops 2 each loop gets half of it, and SO_REUSEPORT does not spread
	// the clients exactly evenly. haproxy's (9,993 with one thread, 9,991
	// with two) is the most its 20,000 fds allow.
	livePairs = 9990
)

func liveCast(e *env) []*peer {
	conf := filepath.Join(e.logDir, "live-maxconn.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("maxconn: %d\n", 2*livePairs)), 0o644)
	nproxy := func(extra ...string) func(l, t int) []string {
		return func(l, t int) []string {
			return append([]string{e.nproxyBin, "-c", conf,
				"--in", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(l),
				"--out", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(t)}, extra...)
		}
	}
	peers := []*peer{
		{name: "direct", only: set(scLive1), desc: "no relay: the live clients straight to the echo server, what the clients and the machine's load cost alone"},
		{name: nproxyName, only: set(scLive1), argv: nproxy(),
			desc: "nproxy, one loop (default)"},
		{name: "haproxy-live-nbthread1", only: set(scLive1), argv: haproxyArgv(e, "live-haproxy-nbthread1.cfg"), env: haproxyPorts,
			desc: "haproxy 2.6 tcp mode, nbthread 1, maxconn 9,993 (its 20,000 fds allow no more), no forced splice (bench/peers/live-haproxy-nbthread1.cfg)"},
		{name: "nproxy-loops2", only: set(scLive2), argv: nproxy("--loops", "2"),
			desc: "nproxy --loops 2 (SO_REUSEPORT, one loop per core)"},
		{name: "haproxy-live-nbthread2", only: set(scLive2), argv: haproxyArgv(e, "live-haproxy-nbthread2.cfg"), env: haproxyPorts,
			desc: "the same haproxy with nbthread 2 and maxconn 9,991 (a poller per thread takes fds) (bench/peers/live-haproxy-nbthread2.cfg)"},
	}
	if e.nproxyBin != "" && !e.nproxyLoops {
		peers[3].skip = "this nproxy has no --loops flag"
	}
	checkPeers(e, peers)
	return peers
}

// liveResult is what -role live-client reports.
type liveResult struct {
	Opened, Lost   int     // connections opened; of them, or never opened, lost
	P50, P99, P999 float64 // µs
	RoundTrips     int
	FirstError     string
}

func runLive(e *env, peers []*peer) ([]*table, error) {
	window := 10 * time.Second
	if e.cfg.mode == "full" {
		window = 60 * time.Second
	}
	method := fmt.Sprintf("%s connections opened through the relay (64 dialling at once, each echoed once), then each sends 64 bytes "+
		"once a second at its own phase and waits for the echo, for %v: about %s round trips/s in all. The clients are one sub-process "+
		"(-role live-client; one socket per pair), the upstream the evio echo (one loop). Percentiles are exact over every round trip of the window. "+
		"Relay CPU is utime+stime over the window, in %% of one core; RSS per connection is the relay's VmRSS in the middle of the window "+
		"minus its VmRSS before the first connection, divided by the connections. Lost: connections that failed to open or failed a round trip. "+
		"One round, peers interleaved.", grouped(livePairs), window, grouped(livePairs))
	type ms struct{ p50, p99, p999, cpu, rss, lost, rts *metric }
	newMs := func() ms {
		return ms{lower("p50", "ms"), lower("p99", "ms"), lower("p99.9", "ms"), lower("relay CPU", "% of a core"),
			lower("RSS", "KiB/conn"), info("lost", "connections"), info("round trips", "1/s")}
	}
	m1, m2 := newMs(), newMs()
	// Each table its own peers only: a table's reference is its first nproxy peer.
	own := func(sc string) []*peer {
		return slices.DeleteFunc(slices.Clone(peers), func(p *peer) bool { return !p.in(sc) })
	}
	t1 := newTable(scLive1, fmt.Sprintf("%s live connections, one thread", grouped(livePairs)), method, own(scLive1), scLive1,
		m1.p50, m1.p99, m1.p999, m1.cpu, m1.rss, m1.lost, m1.rts)
	t2 := newTable(scLive2, fmt.Sprintf("%s live connections, two threads", grouped(livePairs)), method, own(scLive2), scLive2,
		m2.p50, m2.p99, m2.p999, m2.cpu, m2.rss, m2.lost, m2.rts)
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	for _, x := range []struct {
		sc string
		t  *table
		m  ms
	}{{scLive1, t1, m1}, {scLive2, t2, m2}} {
		eachRelay(e, peers, x.sc, x.t, 0, echo.listen, func(r *running) error {
			res, cpu, rss, err := liveOnce(e, r, window)
			if err != nil {
				return err
			}
			m := x.m
			m.p50.add(r.p.name, res.P50/1e3)
			m.p99.add(r.p.name, res.P99/1e3)
			m.p999.add(r.p.name, res.P999/1e3)
			if r.proc != nil {
				m.cpu.add(r.p.name, cpu)
				m.rss.add(r.p.name, rss)
			}
			m.lost.add(r.p.name, float64(res.Lost))
			m.rts.add(r.p.name, float64(res.RoundTrips)/window.Seconds())
			logf("   %s %-22s p50 %.0fµs p99 %.0fµs p99.9 %.0fµs  cpu %.1f%%  %.2f KiB/conn  lost %d", x.sc, r.p.name,
				res.P50, res.P99, res.P999, cpu, rss, res.Lost)
			if res.Lost > 0 {
				return fmt.Errorf("%d connections lost, first: %s", res.Lost, res.FirstError)
			}
			return nil
		})
	}
	return []*table{t1, t2}, nil
}

// liveOnce runs the live clients through r: their result, the relay's CPU
// over the window (% of one core) and its RSS per connection (KiB).
func liveOnce(e *env, r *running, window time.Duration) (*liveResult, float64, float64, error) {
	rss0 := measure(r.pid()).rssKiB
	argv := []string{e.self, "-role", "live-client", "-target", strconv.Itoa(r.listen), "-n", strconv.Itoa(livePairs), "-dur", window.String()}
	client, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, 0, 0, err
	}
	defer stop(client)
	// The client prints "open" once every connection is open (or given up).
	if err := waitLogLine(client, "open", liveOpenLimit+20*time.Second); err != nil {
		return nil, 0, 0, err
	}
	cpu0, t0 := cpuSeconds(r.pid()), time.Now()
	time.Sleep(window / 2)
	rss := float64(measure(r.pid()).rssKiB-rss0) / livePairs
	time.Sleep(window - time.Since(t0))
	cpu := (cpuSeconds(r.pid()) - cpu0) / time.Since(t0).Seconds() * 100
	select {
	case <-client.done:
	case <-time.After(30 * time.Second):
		return nil, 0, 0, fmt.Errorf("the live client did not finish 30 s after its window")
	}
	var res liveResult
	b, _ := os.ReadFile(client.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return nil, 0, 0, fmt.Errorf("live client: %v: %s", err, lastLines(string(b), 3))
	}
	return &res, cpu, rss, nil
}

// waitLogLine waits until p's output has a line starting with prefix.
func waitLogLine(p *proc, prefix string, limit time.Duration) error {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		f, err := os.Open(p.log)
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), prefix) {
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if p.exited() {
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("the client exited: %s", lastLines(string(b), 3))
		}
	}
	return fmt.Errorf("no %q line from the client after %v", prefix, limit)
}

// liveOpenLimit bounds the opening of the connections.
const liveOpenLimit = 60 * time.Second

// liveClient is -role live-client: a.n connections to addr, each echoed
// once, then a ping-pong a second each for a.dur.
func liveClient(addr string, a roleArgs) liveResult {
	conns := openLive(addr, a.n)
	fmt.Printf("open %d\n", len(conns))
	res := liveResult{Opened: len(conns), Lost: a.n - len(conns)}
	if res.Lost > 0 {
		res.FirstError = fmt.Sprintf("%d connections did not open in %v", res.Lost, liveOpenLimit)
	}
	var mu sync.Mutex
	var all []time.Duration
	var lost atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(a.dur)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			times, err := liveLoop(c, end)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, times...)
			if err != nil {
				lost.Add(1)
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
			}
		}(c)
	}
	wg.Wait()
	res.Lost += int(lost.Load())
	res.RoundTrips = len(all)
	if len(all) > 0 {
		slices.Sort(all)
		us := func(p float64) float64 { return float64(percentile(all, p)) / 1e3 }
		res.P50, res.P99, res.P999 = us(0.5), us(0.99), us(0.999)
	}
	return res
}

// liveLoop pings once a second on c, at a random phase, until end.
func liveLoop(c net.Conn, end time.Time) ([]time.Duration, error) {
	buf := make([]byte, len(ping))
	times := make([]time.Duration, 0, 64)
	next := time.Now().Add(rand.N(time.Second))
	for next.Before(end) {
		time.Sleep(time.Until(next))
		t0 := time.Now()
		c.SetDeadline(t0.Add(10 * time.Second))
		if err := echoOnce(c, buf); err != nil {
			return times, err
		}
		times = append(times, time.Since(t0))
		next = next.Add(time.Second)
	}
	return times, nil
}

// openLive opens n echoed connections, 64 dials at a time, within liveOpenLimit.
func openLive(addr string, n int) []net.Conn {
	var mu sync.Mutex
	var conns []net.Conn
	var next atomic.Int64
	deadline := time.Now().Add(liveOpenLimit)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(ping))
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := echoOnce(c, buf); err != nil {
					c.Close()
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns
}

// grouped writes n with a comma between thousands, as the report's prose does.
func grouped(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
