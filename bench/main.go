// Command bench measures nproxy side by side with socat, haproxy, a naive Go
// proxy, a gnet relay and Net::Proxy itself, and writes BENCHMARKS.md with a
// chart per scenario in bench/charts/. Run it from the repository root:
//
//	go run ./bench -quick   # about two minutes
//	go run ./bench          # the full run, about half an hour
//
// Every process it starts (upstream servers, peers, nproxy) listens on
// 127.0.0.1 only and is killed by pid when the run ends, however it ends.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// config holds the sizes of one run; quick and full differ only here.
type config struct {
	mode        string
	rounds      int           // interleaved rounds of the throughput scenarios
	bulkSecs    int           // iperf3 -t
	rateDur     time.Duration // connection-rate window per round
	latDur      time.Duration // latency window per round
	idleConns   int
	idleRounds  int
	idleLimit   time.Duration // time a relay gets to open the idle connections
	slowBytes   int64         // what the client tries to push
	slowWindow  time.Duration // how long it may try
	slowRounds  int
	concurrency int      // clients of the connection-rate and latency scenarios
	profiled    []string // peers observed with perf after the measured rounds
}

// quickConfig checks the harness end to end in about two minutes: one round
// (so no spread), 2,000 idle connections, and perf on nproxy alone. Its
// numbers are indicative; the full run's are the ones to quote.
func quickConfig() config {
	return config{mode: "quick", rounds: 1, bulkSecs: 1, rateDur: 500 * time.Millisecond,
		latDur: 500 * time.Millisecond, idleConns: 2000, idleRounds: 1, idleLimit: 5 * time.Second,
		slowBytes: 100 << 20, slowWindow: 1500 * time.Millisecond, slowRounds: 1, concurrency: 32,
		profiled: []string{nproxyName}}
}

func fullConfig() config {
	return config{mode: "full", rounds: 5, bulkSecs: 2, rateDur: 3 * time.Second,
		latDur: 3 * time.Second, idleConns: 5000, idleRounds: 3, idleLimit: 40 * time.Second,
		slowBytes: 100 << 20, slowWindow: 8 * time.Second, slowRounds: 2, concurrency: 32,
		profiled: profiledPeers}
}

// env is what every scenario needs to start things.
type env struct {
	cfg         config
	root        string // repository root
	self        string // this binary, re-executed for the Go roles
	logDir      string
	nproxyBin   string
	nproxyErr   string
	nproxyLoops bool
	perlLib     string
	perlErr     string
	only        string

	mu       sync.Mutex
	commands map[string]string // peer -> exact command line, for the report
	profiles map[string]string // table key -> perf profile section, for the report
	// kernelShare is, per table key and peer, the percentage of the relay's
	// samples that perf found in the kernel.
	kernelShare map[string]map[string]float64
}

func (e *env) recordCommand(name string, envv, argv []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.commands == nil {
		e.commands = map[string]string{}
	}
	if _, ok := e.commands[name]; !ok {
		// Temporary paths mean nothing to a reader: name what they hold.
		line := strings.Join(append(append([]string{}, envv...), argv...), " ")
		line = strings.ReplaceAll(line, e.self, "go run ./bench")
		line = strings.ReplaceAll(line, e.logDir+"/nproxy", "$TMP/nproxy")
		line = strings.ReplaceAll(line, e.root+"/", "")
		e.commands[name] = line
	}
}

func main() {
	role := flag.String("role", "", "internal: run as a sub-process (echo, naive, gnet)")
	listen := flag.Int("listen", 0, "internal: port of -role")
	target := flag.Int("target", 0, "internal: upstream port of -role")
	var ra roleArgs
	flag.IntVar(&ra.loops, "loops", 1, "internal: event loops of -role gnet")
	flag.StringVar(&ra.also, "also", "", "internal: more ports (comma-separated) for -role echo")
	flag.DurationVar(&ra.dur, "dur", time.Second, "internal: window of -role tunnel-client and live-client")
	flag.IntVar(&ra.n, "n", 0, "internal: connections of -role tunnel-client and live-client")
	flag.StringVar(&ra.step, "step", "", "internal: measurement of -role tunnel-client: "+strings.Join(tunnelSteps, ", "))
	flag.BoolVar(&ra.hold, "hold", false, "internal: -role tunnel-client keeps a connection open while it times new ones")
	quick := flag.Bool("quick", false, "short run (about two minutes): one round, fewer idle connections")
	only := flag.String("peers", "", "comma-separated peers to run besides nproxy (default: all)")
	scen := flag.String("scenarios", "", "comma-separated scenarios (default: all): "+strings.Join(allScenarios, ",")+",micro")
	out := flag.String("out", "BENCHMARKS.md", "report to write, relative to the repository root; its charts go to bench/charts/ beside it")
	flag.Parse()
	if *role != "" {
		ra.listen, ra.target = *listen, *target
		roleMain(*role, ra)
		return
	}
	os.Exit(run(*quick, *only, *scen, *out))
}

func run(quick bool, only, scen, out string) int {
	handleSignals()
	defer cleanUp()
	cfg := fullConfig()
	if quick {
		cfg = quickConfig()
	}
	e, err := setup(cfg, only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(e.logDir)
	rep := &report{env: e, started: time.Now()}
	for _, sc := range scenarios() {
		if scen != "" && !set(strings.Split(scen, ",")...)[sc.name] {
			continue
		}
		logf("== %s", sc.name)
		drainTimeWait(cfg)
		t0, load0 := time.Now(), firstLine("/proc/loadavg")
		peers := sc.peers(e)
		tables, err := sc.run(e, peers)
		if err != nil {
			logf("%s failed: %v", sc.name, err)
			rep.failures = append(rep.failures, fmt.Sprintf("%s: %v", sc.name, err))
		}
		for _, t := range tables {
			t.load = [2]string{load0, firstLine("/proc/loadavg")}
		}
		rep.tables = append(rep.tables, tables...)
		rep.addPeers(peers)
		logf("   %s took %v", sc.name, time.Since(t0).Round(time.Second))
	}
	if scen == "" || set(strings.Split(scen, ",")...)["micro"] {
		logf("== micro")
		rep.micro = microBenchmarks(e.root)
	}
	rep.elapsed = time.Since(rep.started)
	if !filepath.IsAbs(out) {
		out = filepath.Join(e.root, out)
	}
	// The report links its charts as bench/charts/*.svg, relative to itself.
	if err := rep.write(out, filepath.Join(filepath.Dir(out), "bench", "charts")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	logf("wrote %s in %v", out, rep.elapsed.Round(time.Second))
	return 0
}

// drainTimeWait waits (a minute at most: the kernel keeps TIME_WAIT for
// 60 s) until most sockets closed by the previous scenario have left
// TIME_WAIT. Tens of thousands of them on 127.0.0.1 make every connect()
// search longer for a free port, which would slow the next scenario for
// every peer. The quick mode, whose numbers only check the harness, does not
// wait.
func drainTimeWait(cfg config) {
	if cfg.mode == "quick" {
		return
	}
	t0 := time.Now()
	for timeWait() > 5000 && time.Since(t0) < 65*time.Second {
		time.Sleep(time.Second)
	}
	if d := time.Since(t0); d > time.Second {
		logf("   waited %v for TIME_WAIT sockets to expire", d.Round(time.Second))
	}
}

// timeWait reads the number of TCP sockets in TIME_WAIT from
// /proc/net/sockstat ("TCP: inuse N orphan N tw N ..."); -1 if unknown.
func timeWait() int {
	b, _ := os.ReadFile("/proc/net/sockstat")
	_, tcp, _ := strings.Cut(string(b), "TCP:")
	tcp, _, _ = strings.Cut(tcp, "\n")
	f := strings.Fields(tcp)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tw" {
			n, _ := strconv.Atoi(f[i+1])
			return n
		}
	}
	return -1
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// setup finds the repository, builds nproxy and finds Net::Proxy.
func setup(cfg config, only string) (*env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "nproxy-bench-")
	if err != nil {
		return nil, err
	}
	procs.Lock()
	procs.tempDir = tmp
	procs.Unlock()
	e := &env{cfg: cfg, root: root, self: self, logDir: tmp, only: only}
	bin := filepath.Join(tmp, "nproxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nproxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		e.nproxyErr = lastLines(string(out), 3)
		logf("nproxy does not build, benchmarking the others: %s", e.nproxyErr)
	} else {
		e.nproxyBin = bin
		help, _ := exec.Command(bin, "--help").CombinedOutput()
		e.nproxyLoops = strings.Contains(string(help), "--loops")
	}
	e.perlLib, err = netProxyLib(filepath.Join(os.TempDir(), "nproxy-bench-netproxy"))
	if err != nil {
		e.perlErr = err.Error()
		logf("Net::Proxy unavailable: %v", err)
	}
	return e, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/nproxy/nproxy") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run me inside the nproxy repository (no go.mod of github.com/nproxy/nproxy above %s)", dir)
		}
		dir = parent
	}
}
