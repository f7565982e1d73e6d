package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// scenario is one measurement run over every peer that takes part in it.
type scenario struct {
	name string
	run  func(e *env, peers []*peer) ([]*table, error)
}

var allScenarios = []string{"bulk", scRate, scLatency, scIdle, scSlowRead}

func scenarios() []scenario {
	return []scenario{
		{"bulk", runBulk},
		{scRate, runRate},
		{scLatency, runLatency},
		{scIdle, runIdle},
		{scSlowRead, runSlowReader},
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
		"over the test, divided by the GB relayed. %d rounds, peers interleaved in each round.",
		e.cfg.bulkSecs, e.cfg.rounds)
	streams := []int{1, 8}
	tables := map[int]*table{}
	gbps := map[int]*metric{}
	cpu := map[int]*metric{}
	for _, n := range streams {
		sc := scBulk1
		if n == 8 {
			sc = scBulk8
		}
		gbps[n], cpu[n] = higher("throughput", "Gbit/s"), lower("proxy CPU", "s/GB")
		tables[n] = newTable(sc, fmt.Sprintf("Bulk throughput, %d stream(s)", n), method, peers, sc, gbps[n], cpu[n])
	}
	var live []*running
	defer func() {
		for _, r := range live {
			r.stop()
		}
	}()
	for _, p := range peers {
		if !p.in(scBulk1) && !p.in(scBulk8) {
			continue
		}
		port := freePort()
		srv, err := start(e.logDir, nil, "iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
		if err != nil {
			return nil, err
		}
		live = append(live, &running{proc: srv})
		if err := waitListen(port, srv, 5*time.Second); err != nil {
			return nil, err
		}
		r, err := launch(e, p, port)
		if err != nil {
			for _, t := range tables {
				t.note(p.name, "did not start: %v", err)
			}
			continue
		}
		live = append(live, r)
	}
	for round := 0; round < e.cfg.rounds; round++ {
		for _, n := range streams {
			t := tables[n]
			for _, r := range live {
				if r.p == nil || !r.p.in(t.key) {
					continue
				}
				res, dcpu, err := iperf(e, r, n)
				if err != nil {
					t.note(r.p.name, "%v", err)
					logf("   %s %s: %v", t.key, r.p.name, err)
					continue
				}
				gbps[n].add(r.p.name, res.End.SumReceived.BitsPerSecond/1e9)
				if r.proc != nil && res.End.SumReceived.Bytes > 0 {
					cpu[n].add(r.p.name, dcpu/(res.End.SumReceived.Bytes/1e9))
				}
				logf("   %s round %d %-18s %6.2f Gbit/s  cpu %.2fs", t.key, round+1, r.p.name,
					res.End.SumReceived.BitsPerSecond/1e9, dcpu)
			}
		}
	}
	return []*table{tables[1], tables[8]}, nil
}

// iperf runs one client through r and returns the result and the CPU
// seconds the relay spent meanwhile.
func iperf(e *env, r *running, streams int) (*iperfResult, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.cfg.bulkSecs+15)*time.Second)
	defer cancel()
	cpu0 := cpuSeconds(r.pid())
	cmd := exec.CommandContext(ctx, "iperf3", "-c", "127.0.0.1", "-p", strconv.Itoa(r.listen),
		"-t", strconv.Itoa(e.cfg.bulkSecs), "-P", strconv.Itoa(streams), "-J")
	out, err := cmd.Output()
	var res iperfResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return nil, 0, fmt.Errorf("iperf3 -P %d: %v %v", streams, err, jerr)
	}
	if res.Error != "" {
		return nil, 0, fmt.Errorf("iperf3 -P %d: %s", streams, res.Error)
	}
	if r.proc != nil {
		waitChildrenReaped(r.pid(), time.Second)
	}
	return &res, cpuSeconds(r.pid()) - cpu0, nil
}

// waitChildrenReaped lets a forking relay (socat) reap the children of the
// finished test, so that their CPU time shows in its cutime/cstime.
func waitChildrenReaped(pid int, max time.Duration) {
	deadline := time.Now().Add(max)
	for len(tree(pid)) > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
