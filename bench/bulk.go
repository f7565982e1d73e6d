package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenario is one measurement run over every peer that takes part in it.
type scenario struct {
	name string
	run  func(e *env, peers []*peer) ([]*table, error)
	// cast, when set, gives the scenario its own peers instead of the plain
	// relays of peerSet: another nproxy mode and the programs it is compared
	// with (connect-tunnel, sslh, TLS termination). Its first peer whose
	// name starts with "nproxy" is the reference of its ratios.
	cast func(e *env) []*peer
}

func (sc scenario) peers(e *env) []*peer {
	if sc.cast != nil {
		return sc.cast(e)
	}
	return peerSet(e)
}

var allScenarios = []string{"bulk", scLatency, scSlowRead, scIdle, scSSLH, "connect", scTLS, scUDP, "socks", "unix", scTunnels, scFleet, scLive, scRate}

// scenarios run in this order: the connection-rate scenario leaves tens of
// thousands of sockets in TIME_WAIT on 127.0.0.1 for a minute, which slows
// every connect() after it, so it goes last.
func scenarios() []scenario {
	return []scenario{
		{name: "bulk", run: runBulk},
		{name: scLatency, run: runLatency},
		{name: scSlowRead, run: runSlowReader},
		{name: scIdle, run: runIdle},
		{name: scSSLH, run: runSSLH, cast: sslhCast},
		{name: "connect", run: runConnect, cast: connectCast},
		{name: scTLS, run: runTLS, cast: tlsCast},
		{name: scUDP, run: runUDP, cast: udpCast},
		{name: "socks", run: runSocks, cast: socksCast},
		{name: "unix", run: runUnix, cast: unixCast},
		tunnelsScenario(),
		fleetScenario(),
		{name: scLive, run: runLive, cast: liveCast},
		{name: scRate, run: runRate},
	}
}

// iperfResult is the part of iperf3 -J output the harness reads.
type iperfResult struct {
	End struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// runBulk gives each peer its own iperf3 server (a failed test cannot wedge
// the next peer's), then runs 1-stream and 8-stream tests, peers interleaved.
func runBulk(e *env, peers []*peer) ([]*table, error) {
	method := fmt.Sprintf("`iperf3 -c 127.0.0.1 -p PROXY -t %d -P N -J` against `iperf3 -s -B 127.0.0.1` "+
		"(one server per peer), client to server through the relay; Gbit/s as received by the server. "+
		"CPU is utime+stime of the relay's process (children included, as socat forks) from /proc/PID/stat "+
		"over the test, divided by the GB relayed; context switches (voluntary and not, summed over the relay's "+
		"threads from /proc/PID/task/*/status; not counted for socat, whose children take theirs with them) likewise. %s, peers interleaved in each round (the order rotates by one each round).",
		e.cfg.bulkSecs, rounds(e.cfg.rounds))
	streams := []int{1, 8}
	tables := map[int]*table{}
	gbps := map[int]*metric{}
	cpu := map[int]*metric{}
	csw := map[int]*metric{}
	for _, n := range streams {
		sc := scBulk1
		if n == 8 {
			sc = scBulk8
		}
		gbps[n], cpu[n] = higher("throughput", "Gbit/s"), lower("proxy CPU", "s/GB")
		csw[n] = lower("context switches", "k/GB")
		title := "Bulk throughput, 1 stream"
		if n > 1 {
			title = fmt.Sprintf("Bulk throughput, %d streams", n)
		}
		tables[n] = newTable(sc, title, method, peers, sc, gbps[n], cpu[n], csw[n])
	}
	// Each relay is started right before each of its tests and stopped right
	// after: Net::Proxy, once iperf3 has hung up on it, spins at 100% CPU on
	// its dead sockets, and would otherwise slow every peer after it.
	servers, err := startIperfServers(e, peers, scBulk1, scBulk8)
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	if err != nil {
		return nil, err
	}
	for round := 0; round < e.cfg.rounds; round++ {
		for _, n := range streams {
			t := tables[n]
			for _, p := range rotated(peers, round) {
				if !p.in(t.key) {
					continue
				}
				res, c, err := bulkOnce(e, p, servers[p.name].listen, n, nil)
				if err != nil {
					t.note(p.name, "%v", err)
					logf("   %s %s: %v", t.key, p.name, err)
					continue
				}
				gbps[n].add(p.name, res.End.SumReceived.BitsPerSecond/1e9)
				if gb := res.End.SumReceived.Bytes / 1e9; p.argv != nil && gb > 0 {
					cpu[n].add(p.name, c.cpu/gb)
					if c.switches >= 0 {
						csw[n].add(p.name, float64(c.switches)/gb/1e3)
					}
				}
				logf("   %s round %d %-18s %6.2f Gbit/s  cpu %.2fs", t.key, round+1, p.name,
					res.End.SumReceived.BitsPerSecond/1e9, c.cpu)
			}
		}
	}
	profile(e, peers, scBulk1, scBulk1, bulkWorkload(e, servers))
	return []*table{tables[1], tables[8]}, nil
}

// startIperfServers gives each peer of the scenarios scs its own iperf3
// server: a test that fails half-way cannot wedge the next peer's.
func startIperfServers(e *env, peers []*peer, scs ...string) (map[string]*running, error) {
	servers := map[string]*running{}
	for _, p := range peers {
		if !slices.ContainsFunc(scs, p.in) {
			continue
		}
		port := freePort()
		srv, err := start(e.logDir, nil, "iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
		if err != nil {
			return servers, err
		}
		servers[p.name] = &running{proc: srv, listen: port}
		if err := waitListen(port, srv, 5*time.Second); err != nil {
			return servers, err
		}
	}
	return servers, nil
}

// bulkOnce starts p in front of the iperf3 server on port, runs one test
// (with perf recording the relay when profile is set), and stops p.
func bulkOnce(e *env, p *peer, port, streams int, profile func(r *running) func()) (*iperfResult, cost, error) {
	r, err := launch(e, p, port)
	if err != nil {
		return nil, cost{}, fmt.Errorf("did not start: %w", err)
	}
	defer r.stop()
	if profile != nil {
		defer profile(r)()
	}
	return iperf(e, r, "-P", strconv.Itoa(streams))
}

// cost is what one test cost the relay: CPU seconds and context switches
// (-1 when they cannot be counted).
type cost struct {
	cpu      float64
	switches int64
}

// iperf runs one client through r, with args (-P N, -R) added to its
// command line, and returns the result and its cost.
func iperf(e *env, r *running, args ...string) (*iperfResult, cost, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.cfg.bulkSecs+5)*time.Second)
	defer cancel()
	cpu0, csw0 := cpuSeconds(r.pid()), ctxSwitches(r.pid())
	argv := append([]string{"-c", "127.0.0.1", "-p", strconv.Itoa(r.listen), "-t", strconv.Itoa(e.cfg.bulkSecs), "-J"}, args...)
	out, err := exec.CommandContext(ctx, "iperf3", argv...).Output()
	var res iperfResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return nil, cost{}, fmt.Errorf("iperf3 %s: %v %v", strings.Join(args, " "), err, jerr)
	}
	if res.Error != "" {
		return nil, cost{}, fmt.Errorf("iperf3 %s: %s", strings.Join(args, " "), res.Error)
	}
	c := cost{switches: -1}
	if r.proc == nil {
		return &res, c, nil
	}
	if !r.p.forks {
		c.switches = ctxSwitches(r.pid()) - csw0
	}
	waitChildrenReaped(r.pid(), time.Second)
	c.cpu = cpuSeconds(r.pid()) - cpu0
	return &res, c, nil
}

// waitChildrenReaped lets a forking relay (socat) reap the children of the
// finished test, so that their CPU time shows in its cutime/cstime.
func waitChildrenReaped(pid int, max time.Duration) {
	deadline := time.Now().Add(max)
	for len(tree(pid)) > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
