package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// The sslh scenario: one port shared by a server-first service (SSH) and a
// client-first one (SSL). Client-first clients go through an sslh, alone
// and while many silent clients wait on its timeout, as SSH clients of
// Net::Proxy's era did.
const (
	scSSLH        = "sslh"
	scSSLHRate    = "sslh-rate"
	scSSLHLatency = "sslh-latency"
	// sslhWait is every peer's -t, in whole seconds (sslh and the script
	// take integers): long, so that no silent client times out (and leaves)
	// while the client-first ones are measured.
	sslhWait = 30
	// sslhClients client-first clients run at once: a few, as on a real
	// sslh port; the rate scenario is the one that saturates a relay.
	sslhClients = 8
	sslhSilent  = 1000
	// sslhLimit bounds each client-first connection and each batch of
	// silent dials: a peer that stalls costs seconds, not a hang.
	sslhLimit = 2 * time.Second
	// sslhBatch silent clients are dialled before checking that the peer
	// took them: fewer than sslh's listen backlog (50), so that no dial
	// waits for a SYN retransmit (Net::Proxy's backlog is 1: it stalls anyway).
	sslhBatch = 32
)

// sslhServerFirst is the port of the server-first upstream: a peer's argv
// has room for one target (the client-first echo), so runSSLH sets this
// before it launches any peer.
var sslhServerFirst int

func sslhCast(e *env) []*peer {
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	wait := strconv.Itoa(sslhWait)
	// Debian's sslh in the foreground (-f), numeric (-n, no DNS); unmatched
	// client-first bytes go to --anyprot, the timeout to --ssh (its default
	// --on-timeout).
	debian := func(bin string) func(l, t int) []string {
		return func(l, t int) []string {
			return []string{bin, "-f", "-n", "-t", wait, "-p", addr(l),
				"--ssh", addr(sslhServerFirst), "--tls", addr(t), "--anyprot", addr(t)}
		}
	}
	script := netProxyScript(e.perlLib, "sslh")
	peers := []*peer{
		{name: "nproxy-sslh", desc: "`nproxy sslh -t 30`: one event loop, a timer per waiting client; " +
			"the first byte picks the client-first route, \"SSH-\" the SSH one, the deadline the SSH one",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "sslh", "-p", addr(l), "-s", addr(sslhServerFirst), "-l", addr(t), "-t", wait}
			}},
		{name: "sslh-select", desc: "Debian's sslh 1.20, `sslh-select -f -n -t 30`: one process, select(2); " +
			"--ssh and --tls probes, --anyprot (the client-first server) for what no probe takes",
			argv: debian("/usr/sbin/sslh-select")},
		{name: "sslh-fork", desc: "Debian's sslh 1.20, `/usr/sbin/sslh -f -n -t 30` (sslh-fork): a process per " +
			"connection, which probes and then relays; same options as sslh-select",
			argv: debian("/usr/sbin/sslh"), forks: true},
		{name: "netproxy-perl-sslh", desc: "Net::Proxy 0.12's `sslh` script (Debian libnet-proxy-perl), `-t 30`: " +
			"its dual connector waits for each client's first byte inside accept (listen backlog 1), so one " +
			"silent client holds every other one up for the whole timeout",
			argv: func(l, t int) []string {
				return []string{"perl", script, "-p", addr(l), "-s", addr(sslhServerFirst), "-l", addr(t), "-t", wait}
			},
			env: func(l, t int) []string { return []string{"PERL5LIB=" + e.perlLib} }},
	}
	np := peers[len(peers)-1]
	if e.perlLib == "" {
		np.skip = "Net::Proxy unavailable: " + e.perlErr
	} else if _, err := os.Stat(script); err != nil {
		np.skip = "Net::Proxy's sslh script not found: " + err.Error()
	}
	checkPeers(e, peers)
	return peers
}

// netProxyScript is the path of one of Net::Proxy's scripts, which the
// package puts in usr/bin beside usr/share/perl5.
func netProxyScript(perlLib, name string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(perlLib))), "usr/bin", name)
}

// sslhLevel is one number of silent clients and the columns it fills.
type sslhLevel struct {
	silent      int
	rate, fails *metric
	p50, p99    *metric
	label       string
}

func runSSLH(e *env, peers []*peer) ([]*table, error) {
	levels := []*sslhLevel{{silent: 0, label: "alone"}, {silent: sslhSilent, label: fmt.Sprintf("%d silent", sslhSilent)}}
	var rateCols, latCols []*metric
	for _, l := range levels {
		l.rate, l.fails = higher(l.label, "conn/s"), info("failed, "+l.label, "%")
		l.p50, l.p99 = lower("p50, "+l.label, "µs"), lower("p99, "+l.label, "µs")
		rateCols = append(rateCols, l.rate, l.fails)
		latCols = append(latCols, l.p50, l.p99)
	}
	rate := newTable(scSSLHRate, "sslh: client-first connections per second", fmt.Sprintf(
		"%d Go clients at once, each in a loop for %v: connect, write 64 bytes (`0123456789abcdef` four times, which no probe takes for SSH or TLS), "+
			"read its echo, close (%v to connect and %v for the echo, else it counts as failed; \"failed\" is the share of connections that did). Once with no other "+
			"client (\"alone\"), once while %d silent clients wait on the timeout (-t %d): they are dialled "+
			"in batches of %d, each batch checked taken by the peer (an open fd each, or a child process each for sslh-fork, "+
			"read from /proc) before the next, "+
			"and reset after the window. A fresh peer per measurement; %s, peers interleaved. Upstreams: "+
			"the evio echo (client-first) and, for the timeout route, a Go server that sends an SSH banner first.",
		sslhClients, e.cfg.rateDur, sslhLimit, sslhLimit, sslhSilent, sslhWait, sslhBatch, rounds(e.cfg.rounds)), peers, scSSLHRate, rateCols...)
	lat := newTable(scSSLHLatency, "sslh: latency of client-first connections", fmt.Sprintf(
		"The connections of the sslh-rate table, each timed from connect to the echo read back, %d clients "+
			"at once, so the percentiles include the time a connection waits for the others. A failed connection "+
			"counts at the time it took to fail (%v or more when it timed out): with failures, percentiles are lower "+
			"bounds.", sslhClients, sslhLimit), peers, scSSLHLatency, latCols...)
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	banner, err := startBanner()
	if err != nil {
		return nil, err
	}
	defer banner.Close()
	for round := 0; round < e.cfg.rounds; round++ {
		for _, p := range rotated(peers, round) {
			if !p.in(scSSLHRate) {
				continue
			}
			for _, l := range levels {
				res, err := sslhOnce(e, p, echo.listen, l.silent, rate)
				if err != nil {
					rate.note(p.name, "%s: %v", l.label, err)
					logf("   sslh %s %s: %v", p.name, l.label, err)
					continue
				}
				res.record(p.name, l, e.cfg.rateDur)
				logf("   sslh round %d %-18s %-11s %7.0f conn/s  p50 %8.0fµs p99 %8.0fµs  %d failed",
					round+1, p.name, l.label, float64(res.ok)/e.cfg.rateDur.Seconds(),
					us(res.samples, 0.5), us(res.samples, 0.99), res.fails)
				if res.fails > 0 {
					rate.note(p.name, "%s: connections failed or timed out (%v), the first with: %v", l.label, sslhLimit, brief(res.firstErr))
				}
			}
		}
	}
	for _, p := range rate.peers {
		lat.notes[p] = rate.notes[p]
	}
	return []*table{rate, lat}, nil
}

// startBanner serves the server-first upstream inside the harness: the
// banner, then an echo. Only timed-out clients reach it, so it carries no
// load during a measurement.
func startBanner() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(freePort()))
	if err != nil {
		return nil, err
	}
	sslhServerFirst = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "SSH-2.0-bench\r\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln, nil
}

// sslhResult is one window of client-first connections.
type sslhResult struct {
	ok, fails int64
	firstErr  error
	samples   []time.Duration // sorted; failed connections included
}

func (r *sslhResult) record(peer string, l *sslhLevel, d time.Duration) {
	l.rate.add(peer, float64(r.ok)/d.Seconds())
	if n := r.ok + r.fails; n > 0 {
		l.fails.add(peer, 100*float64(r.fails)/float64(n))
	}
	if len(r.samples) > 0 {
		l.p50.add(peer, us(r.samples, 0.50))
		l.p99.add(peer, us(r.samples, 0.99))
	}
}

func us(sorted []time.Duration, p float64) float64 {
	return float64(percentile(sorted, p)) / 1e3
}

// sslhOnce starts p, opens the silent clients, runs the client-first
// window, and stops p.
func sslhOnce(e *env, p *peer, target, silent int, t *table) (*sslhResult, error) {
	r, err := launch(e, p, target)
	if err != nil {
		return nil, fmt.Errorf("did not start: %w", err)
	}
	defer r.stop()
	addr := "127.0.0.1:" + strconv.Itoa(r.listen)
	// Counted before the warm-up, whose descriptors may not be closed yet.
	base := holding(r)
	if err := shortConn(addr, make([]byte, len(ping))); err != nil {
		return nil, fmt.Errorf("a client-first connection does not get through: %w", err)
	}
	t0 := time.Now()
	conns, err := openSilent(r, addr, silent, base)
	if silent > 0 {
		logf("   sslh %s: %d silent clients open in %v", p.name, len(conns), time.Since(t0).Round(time.Millisecond))
	}
	defer resetAll(conns)
	if err != nil {
		t.note(p.name, "%v", err)
	}
	res := clientFirst(addr, sslhClients, e.cfg.rateDur)
	if r.proc.exited() {
		return nil, fmt.Errorf("the peer died during the window (%d silent clients open)", len(conns))
	}
	if held := holding(r) - base; silent > 0 && held < len(conns) {
		t.note(p.name, "after the window it held %d of the %d silent clients (%s)", held, len(conns), holdingWhat(r))
	}
	return res, nil
}

// openSilent dials n clients that never send, a batch at a time, and waits
// until the peer holds each one (a completed dial only means the kernel
// queued it) before the next batch.
func openSilent(r *running, addr string, n, base int) ([]net.Conn, error) {
	var conns []net.Conn
	for len(conns) < n {
		deadline := time.Now().Add(sslhLimit)
		d := net.Dialer{Deadline: deadline}
		for i := 0; i < sslhBatch && len(conns) < n; i++ {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return conns, fmt.Errorf("silent clients: dial %d of %d failed (%v)", len(conns)+1, n, brief(err))
			}
			conns = append(conns, c)
		}
		held := 0
		for time.Now().Before(deadline) {
			if held = holding(r) - base; held >= len(conns) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if held < len(conns) {
			return conns, fmt.Errorf("silent clients: %v after dialling %d, it held %d (%s)", sslhLimit, len(conns), held, holdingWhat(r))
		}
	}
	return conns, nil
}

// resetAll closes with a reset, leaving no TIME_WAIT behind (as idle does).
func resetAll(conns []net.Conn) {
	for _, c := range conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// clientFirst runs the client-first clients for d and times every
// connection, failed ones included.
func clientFirst(addr string, clients int, d time.Duration) *sslhResult {
	res := &sslhResult{}
	var mu sync.Mutex
	res.ok, res.fails, res.firstErr = clientLoop(clients, d, func(buf []byte) error {
		t0 := time.Now()
		err := shortConn(addr, buf)
		took := time.Since(t0)
		mu.Lock()
		res.samples = append(res.samples, took)
		mu.Unlock()
		return err
	})
	slices.Sort(res.samples)
	return res
}

// holding counts what shows that a peer took a connection: a child process
// for a forking peer, else an open descriptor. Cheaper than measure, which
// also reads every child's memory.
func holding(r *running) int {
	pid := r.pid()
	if r.p.forks {
		// Two levels down, as sslh-fork has a listener process per address
		// and a process per connection under it; tree would also read the
		// /proc entries of a thousand leaves on every poll (0.1 s here).
		n := 0
		for _, c := range children(pid) {
			n += 1 + len(children(c))
		}
		return n
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func holdingWhat(r *running) string {
	if r.p.forks {
		return "counted as its child processes"
	}
	return "counted as open fds"
}

// brief drops the addresses from a network error (they change every round,
// and the table notes the same failure once).
func brief(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return fmt.Sprint(err)
}
