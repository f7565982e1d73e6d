package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The fleet scenario (issue 15): what balancing over three servers with
// health checks costs against one server, and how many connections a
// reload loses under load, nproxy's SIGHUP against haproxy's `-sf` (a new
// process that takes over from the old one).

const (
	scFleet       = "fleet"
	scFleetRate   = "fleet-rate"
	scFleetReload = "fleet-reload"
	fleetReloads  = 5
)

// fleetSetup holds the three servers' ports, known before the peers'
// command lines are built: one evio echo process listening on all three.
type fleetSetup struct{ servers [3]int }

func fleetScenario() scenario {
	s := &fleetSetup{}
	return scenario{name: scFleet,
		cast: func(e *env) []*peer {
			for i := range s.servers {
				s.servers[i] = freePort()
			}
			return fleetCast(e, s)
		},
		run: func(e *env, peers []*peer) ([]*table, error) { return runFleet(e, s, peers) }}
}

// nproxyFleetConfig writes the YAML of a proxy from listen to the servers
// (all three with checks, or the first alone) and returns its path.
func (s *fleetSetup) nproxyFleetConfig(dir string, listen, servers, weight int) string {
	out := fmt.Sprintf("{type: tcp, host: 127.0.0.1, port: %d}", s.servers[0])
	if servers == 3 {
		out = fmt.Sprintf("{type: tcp, check: tcp, interval: 2, servers: [{host: 127.0.0.1, port: %d, weight: %d}, "+
			"{host: 127.0.0.1, port: %d}, {host: 127.0.0.1, port: %d}]}", s.servers[0], weight, s.servers[1], s.servers[2])
	}
	path := filepath.Join(dir, fmt.Sprintf("fleet-%d.yaml", listen))
	os.WriteFile(path, []byte(fmt.Sprintf("proxies:\n  - in: {type: tcp, host: 127.0.0.1, port: %d}\n    out: %s\n", listen, out)), 0o644)
	return path
}

func fleetCast(e *env, s *fleetSetup) []*peer {
	nproxy := func(servers int) func(l, t int) []string {
		return func(l, t int) []string {
			return []string{e.nproxyBin, "-c", s.nproxyFleetConfig(e.logDir, l, servers, 1)}
		}
	}
	peers := []*peer{
		{name: "nproxy-balance3", only: set(scFleetRate, scFleetReload), argv: nproxy(3),
			desc: "nproxy, one loop, `-c FILE`: tcp out over three servers, roundrobin, `check: tcp` every 2 s; reloaded by SIGHUP"},
		{name: "nproxy-1server", only: set(scFleetRate), argv: nproxy(1),
			desc: "nproxy, one loop, `-c FILE`: tcp out to one server, no checks"},
		{name: "haproxy-fleet", only: set(scFleetRate, scFleetReload),
			argv: func(l, t int) []string {
				return []string{"haproxy", "-db", "-f", filepath.Join(e.root, "bench/peers/fleet-haproxy.cfg")}
			},
			env:  func(l, t int) []string { return s.haproxyEnv(l, 1) },
			desc: "haproxy 2.6 tcp mode, nbthread 1, three servers, roundrobin, `check inter 2s` (bench/peers/fleet-haproxy.cfg); reloaded by starting a new haproxy with `-sf OLD_PID`"},
	}
	checkPeers(e, peers)
	return peers
}

func (s *fleetSetup) haproxyEnv(listen, weight int) []string {
	env := []string{"NP_LISTEN=" + strconv.Itoa(listen), "NP_WEIGHT=" + strconv.Itoa(weight)}
	for i, p := range s.servers {
		env = append(env, fmt.Sprintf("NP_S%d=%d", i+1, p))
	}
	return env
}

func runFleet(e *env, s *fleetSetup, peers []*peer) ([]*table, error) {
	rate, cpu := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	rt := newTable(scFleetRate, "Balancing: three servers with checks against one", rateMethod(e)+
		" Upstream: one evio echo process listening on three ports (the three servers); the one-server peer uses the first.",
		peers, scFleetRate, rate, cpu)
	interval := 400 * time.Millisecond
	if e.cfg.mode == "full" {
		interval = time.Second
	}
	lost, made := lower("lost", "connections"), info("connections", "conn")
	rl := newTable(scFleetReload, fmt.Sprintf("Reload under load: connections lost during %d reloads", fleetReloads), fmt.Sprintf(
		"%d Go clients in a loop (connect, 64-byte echo, close) for %v, while the relay is reloaded %d times, one every %v, each "+
			"with a changed configuration (the first server's weight alternates 1 and 2). nproxy: the file rewritten, then SIGHUP. "+
			"haproxy: a new `haproxy -db -f CFG -sf OLD` with the new weight in its environment, the old one finishing its connections and exiting. "+
			"Lost: connections that failed (refused, reset, or no echo within 2 s). %s, peers interleaved.",
		e.cfg.concurrency, time.Duration(fleetReloads+1)*interval, fleetReloads, interval, rounds(e.cfg.rounds)), peers, scFleetReload, lost, made)
	argv := []string{e.self, "-role", "echo", "-listen", strconv.Itoa(s.servers[0]),
		"-also", strconv.Itoa(s.servers[1]) + "," + strconv.Itoa(s.servers[2])}
	echo, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	defer stop(echo)
	for _, p := range s.servers {
		if err := waitListen(p, echo, 5*time.Second); err != nil {
			return nil, err
		}
	}
	for round := 0; round < e.cfg.rounds; round++ {
		rateRound(e, peers, scFleetRate, rt, round, s.servers[0], rate, cpu)
		eachRelay(e, peers, scFleetReload, rl, round, s.servers[0], func(r *running) error {
			ok, fails, firstErr, err := reloadUnderLoad(e, s, r, interval)
			if err != nil {
				return err
			}
			lost.add(r.p.name, float64(fails))
			made.add(r.p.name, float64(ok))
			logf("   %s round %d %-16s connections lost during %d reloads: %d (of %d)", scFleetReload, round+1, r.p.name, fleetReloads, fails, ok+fails)
			if fails > 0 {
				rl.note(r.p.name, "round %d: first failure: %v", round+1, firstErr)
			}
			return nil
		})
	}
	for _, p := range rl.peers {
		if n := len(lost.vals[p]); n > 0 {
			rl.note(p, "connections lost during %d reloads: %.0f (sum over %s, of %.0f connections)", fleetReloads,
				sum(lost.vals[p]), rounds(n), sum(lost.vals[p])+sum(made.vals[p]))
		}
	}
	return []*table{rt, rl}, nil
}

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

// reloadUnderLoad runs the clients through r while it is reloaded
// fleetReloads times, and counts their connections.
func reloadUnderLoad(e *env, s *fleetSetup, r *running, interval time.Duration) (ok, fails int64, firstErr, err error) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ok, fails, firstErr = connLoop(r.listen, e.cfg.concurrency, time.Duration(fleetReloads+1)*interval)
	}()
	var old []*proc // haproxy processes told to finish, the first included
	defer func() {
		for _, p := range old {
			stop(p)
		}
	}()
	first, current := r.proc, r.proc
	for i := 1; i <= fleetReloads && err == nil; i++ {
		time.Sleep(interval)
		weight := 1 + i%2
		if strings.HasPrefix(r.p.name, "haproxy") {
			var next *proc
			next, err = start(e.logDir, s.haproxyEnv(r.listen, weight), "haproxy", "-db", "-f",
				filepath.Join(e.root, "bench/peers/fleet-haproxy.cfg"), "-sf", strconv.Itoa(current.pid()))
			if err == nil {
				old, current = append(old, current), next
			}
			continue
		}
		s.nproxyFleetConfig(e.logDir, r.listen, 3, weight)
		err = syscall.Kill(r.pid(), syscall.SIGHUP)
	}
	wg.Wait()
	if err == nil && current.exited() {
		err = fmt.Errorf("the relay died during the reloads")
	}
	// The last haproxy is the one serving: the caller checks and stops it;
	// the first one has exited, as -sf asks.
	r.proc = current
	if err == nil && !strings.HasPrefix(r.p.name, "haproxy") {
		if b, _ := os.ReadFile(first.log); strings.Contains(string(b), "reload:") {
			err = fmt.Errorf("a reload failed: %s", lastLines(string(b), 2))
		}
	}
	return ok, fails, firstErr, err
}
