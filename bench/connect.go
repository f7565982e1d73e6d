package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The connect scenario: a local tunnel entry whose clients reach their
// server through a web proxy with HTTP CONNECT, the job of `nproxy
// connect-tunnel` (issue 3), measured against Net::Proxy's own
// connect-tunnel, proxytunnel and socat's PROXY address. Every entry goes
// through the same tinyproxy, started once for the scenario.

const (
	scConnectRate = "connect-rate"
	scConnectBulk = "connect-bulk"
	webProxyName  = "tinyproxy"
	directConnect = "tinyproxy-only"
	webProxyConf  = "connect-tinyproxy.conf" // in bench/peers, and its filled-in copy in the run's temp dir
)

// rateClients are the concurrent clients of the tunnel-rate test: one gives
// the cost of a whole CONNECT handshake, eight show whether an entry opens
// tunnels in parallel (Net::Proxy's CONNECT blocks its loop until the web
// proxy answers).
var rateClients = []int{1, 8}

// tunnelWindow is how long one tunnel-rate test lasts: the connection-rate
// window, but at most 2 s, since the scenario runs ten of them a round
// (five peers, two client counts) and its full mode must stay near 4 minutes.
func tunnelWindow(e *env) time.Duration { return min(e.cfg.rateDur, 2*time.Second) }

// webProxy is the scenario's tinyproxy: the cast picks its port, so that
// the peers' command lines can name it, and runConnect starts it.
var webProxy struct{ port int }

func connectCast(e *env) []*peer {
	webProxy.port = freePort()
	px := "127.0.0.1:" + strconv.Itoa(webProxy.port)
	tunnel := func(l, t int) string { return fmt.Sprintf("%d:127.0.0.1:%d", l, t) }
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	// The script sits in usr/bin beside the usr/share/perl5 that holds Net::Proxy.
	script := filepath.Join(e.perlLib, "../../../usr/bin/connect-tunnel")
	peers := []*peer{
		{name: "nproxy-connect-tunnel", desc: "`nproxy connect-tunnel -L`, one loop: the CONNECT handshake is a state machine on the loop, then the tunnel is spliced",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "connect-tunnel", "-L", "-P", px, "-T", tunnel(l, t)}
			}},
		// As shipped, the script dies of SIGPIPE when a client has gone
		// while it still writes: at the end of every client → server iperf3
		// test, before iperf3 gets its result over the control connection
		// (also tunnelled). So it starts with SIGPIPE ignored, as
		// bench/peers/netproxy.pl does for Net::Proxy; the script itself is
		// unchanged.
		{name: "netproxy-perl-connect-tunnel", desc: "Net::Proxy 0.12's connect-tunnel script (Debian libnet-proxy-perl, unchanged, PERL5LIB): " +
			"select loop, listen backlog 1, the CONNECT request sent and its answer read by LWP::UserAgent, blocking the loop. " +
			"Started with SIGPIPE ignored (`env --ignore-signal=PIPE`, kept through exec): else it dies at the end of every client → server iperf3 test, before iperf3 has its result",
			argv: func(l, t int) []string {
				return []string{"env", "--ignore-signal=PIPE", "perl", script, "-L", "-P", px, "-T", tunnel(l, t)}
			},
			env: func(l, t int) []string { return []string{"PERL5LIB=" + e.perlLib} }},
		// Debian's proxytunnel 1.10 binds its standalone mode (-a PORT) to
		// every address, and the harness listens on 127.0.0.1 only: so it
		// runs in its inetd mode, one process per connection, under
		// systemd's inetd-style socket activator bound to 127.0.0.1.
		{name: "proxytunnel", forks: true,
			desc: "proxytunnel 1.10 in inetd mode (`-i`) under `systemd-socket-activate --inetd -a` on 127.0.0.1 (its standalone `-a PORT` " +
				"would bind every address): a fork and exec per tunnel, where standalone mode only forks",
			argv: func(l, t int) []string {
				return []string{"systemd-socket-activate", "--inetd", "-a", "-l", addr(l),
					"proxytunnel", "-i", "-q", "-p", px, "-d", addr(t)}
			}},
		{name: "socat-proxy", forks: true, desc: "socat TCP-LISTEN,fork to its PROXY address (CONNECT), default 8 KiB buffer, one process per tunnel",
			argv: func(l, t int) []string {
				return []string{"socat", "TCP-LISTEN:" + strconv.Itoa(l) + ",bind=127.0.0.1,reuseaddr,fork,backlog=4096",
					"PROXY:127.0.0.1:" + addr(t) + ",proxyport=" + strconv.Itoa(webProxy.port)}
			}},
		// The reference: no entry, tinyproxy alone between client and echo.
		{name: directConnect, only: set(scConnectRate),
			desc: "no tunnel entry: each Go client sends `CONNECT` to tinyproxy itself and reads the `200` before its echo " +
				"(tunnel rate only): tinyproxy with nothing in front of it"},
		// Not a peer: the web proxy under every peer, listed for its command.
		{name: webProxyName, only: set(),
			desc: "the web proxy every peer goes through: tinyproxy 1.11 (Debian), foreground, a thread per client, " +
				"MaxClients 1000, LogLevel Critical, CONNECT allowed only to the run's upstream ports (bench/peers/" + webProxyConf + ")",
			argv: func(l, t int) []string {
				return []string{"tinyproxy", "-d", "-c", filepath.Join(e.logDir, webProxyConf)}
			}},
	}
	for _, p := range peers {
		p.skip = connectSkip(e, p.name, script)
	}
	checkPeers(e, peers)
	if tp := peers[len(peers)-1]; tp.skip == "left out by -peers" {
		tp.skip = "" // every peer needs it
	}
	return peers
}

// connectSkip says why a peer of the scenario cannot run here, beyond
// what checkPeers finds (a missing first program).
func connectSkip(e *env, name, script string) string {
	switch name {
	case "nproxy-connect-tunnel":
		if e.nproxyBin != "" && exec.Command(e.nproxyBin, "connect-tunnel", "--help").Run() != nil {
			return "this nproxy has no connect-tunnel command"
		}
	case "netproxy-perl-connect-tunnel":
		if e.perlLib == "" {
			return "Net::Proxy unavailable: " + e.perlErr
		}
		if _, err := os.Stat(script); err != nil {
			return "no connect-tunnel script beside Net::Proxy: " + err.Error()
		}
		if exec.Command("perl", "-MLWP::UserAgent", "-e1").Run() != nil {
			return "the script needs LWP::UserAgent: libwww-perl not installed"
		}
	case "proxytunnel":
		if _, err := exec.LookPath("proxytunnel"); err != nil {
			return "proxytunnel not installed"
		}
	}
	return ""
}

// connectStep is one kind of measurement, done for every peer in each round.
type connectStep struct {
	t      *table
	label  string            // "8 clients", "server → client"
	target func(p *peer) int // upstream port the tunnels lead to
	// run measures through r; failed counts the tunnels that failed (and
	// firstErr is the first such) in a test that went on regardless; err
	// says why there is no measurement.
	run func(r *running) (failed int64, firstErr, err error)
}

func runConnect(e *env, peers []*peer) ([]*table, error) {
	rate, bulk := connectTables(e, peers)
	tables := []*table{rate, bulk}
	tp := peerNamed(peers, webProxyName)
	if tp.skip != "" {
		return tables, fmt.Errorf("no web proxy to tunnel through: %s", tp.skip)
	}
	echo, err := startEcho(e)
	if err != nil {
		return tables, err
	}
	defer echo.stop()
	iperfs, err := startIperfServers(e, peers, scConnectBulk)
	defer func() {
		for _, s := range iperfs {
			s.stop()
		}
	}()
	if err != nil {
		return tables, err
	}
	allowed := []int{echo.listen}
	for _, s := range iperfs {
		allowed = append(allowed, s.listen)
	}
	proxy, err := startWebProxy(e, tp, allowed)
	if err != nil {
		return tables, err
	}
	defer stop(proxy)
	trouble := &tallies{}
	steps := rateSteps(e, rate, echo.listen, proxy)
	steps = append(steps, bulkSteps(e, bulk, iperfs, proxy)...)
	for round := 0; round < e.cfg.rounds; round++ {
		for _, s := range steps {
			for _, p := range rotated(peers, round) {
				if !p.in(s.t.key) {
					continue
				}
				if proxy.exited() {
					return tables, fmt.Errorf("tinyproxy exited: %v (log: %s)", proxy.cmd.ProcessState, filepath.Join(e.logDir, "tinyproxy.log"))
				}
				connectOnce(e, p, s, trouble)
			}
		}
	}
	trouble.write()
	return tables, nil
}

// connectOnce runs one step with a fresh entry, as withRelays does: one
// that went bad (dead of SIGPIPE, spinning) must not spoil the next test.
func connectOnce(e *env, p *peer, s connectStep, trouble *tallies) {
	r, err := launch(e, p, s.target(p))
	if err != nil {
		s.t.note(p.name, "did not start: %v", err)
		logf("   %s %s did not start: %v", s.t.key, p.name, err)
		return
	}
	failed, firstErr, err := s.run(r)
	died := r.proc != nil && r.proc.exited()
	r.stop()
	trouble.count(s, p.name)
	if failed > 0 {
		trouble.add(s, p.name, "had failed tunnels", failed, firstErr.Error())
	}
	if err != nil {
		trouble.add(s, p.name, "gave no result", 1, err.Error())
		logf("   %s %s: %v", s.t.key, p.name, err)
	}
	if died {
		// Checked after the test: an entry that died at its very end (of
		// SIGPIPE, say) still gave its result, but it is said.
		trouble.add(s, p.name, "ended with the entry dead", 1, r.proc.cmd.ProcessState.String())
	}
}

func connectTables(e *env, peers []*peer) (rate, bulk *table) {
	common := fmt.Sprintf("%s, peers interleaved (the order rotates each round), a fresh tunnel entry for each test. "+
		"One tinyproxy (bench/peers/%s) serves every peer for the whole scenario on the same 2 cores: it does its own share of "+
		"the work for each tunnel and each byte, so it is a ceiling common to all: the closer the entries come to each other, the less they are what limits.",
		rounds(e.cfg.rounds), webProxyConf)
	var rm []*metric
	for _, n := range rateClients {
		rm = append(rm, higher(fmt.Sprintf("tunnels, %d client%s", n, plural(n)), "tunnels/s"))
	}
	rm = append(rm, info(fmt.Sprintf("tinyproxy CPU, %d clients", rateClients[len(rateClients)-1]), "cores"))
	rate = newTable(scConnectRate, "CONNECT tunnels opened per second", fmt.Sprintf(
		"Go clients (%s at a time), each in a loop: connect to the tunnel entry, write 64 bytes, read the 64-byte echo, "+
			"close. For each, the entry connects to tinyproxy, asks `CONNECT 127.0.0.1:ECHO`, waits for the `200`, and "+
			"tinyproxy connects to the evio echo. The %s row has no entry: its clients send the `CONNECT` themselves and "+
			"wait for the `200` before they write, so it shows what tinyproxy does with no entry in the way, not a strict "+
			"ceiling (an entry that holds the client's 64 bytes and sends them right after the `200` can beat it). %v per test. A tunnel that fails (refused, reset, or 2 s without an "+
			"answer) is counted, not retried. tinyproxy CPU: its utime+stime over the test ÷ the test's length. %s",
		joinInts(rateClients, " or "), directConnect, tunnelWindow(e), common), peers, scConnectRate, rm...)
	bulk = newTable(scConnectBulk, "Bulk throughput through a CONNECT tunnel", fmt.Sprintf(
		"`iperf3 -c 127.0.0.1 -p ENTRY -t %d -J`, 1 stream, client → server, then with `-R`, server → client, to "+
			"`iperf3 -s` (one per peer) through the entry and tinyproxy; Gbit/s as received. Entry CPU: utime+stime of the "+
			"entry's process tree (children included, as proxytunnel and socat fork per tunnel) over each test ÷ the GB "+
			"relayed, median over both directions; tinyproxy's own CPU is apart, in the same unit. %s",
		e.cfg.bulkSecs, common), peers, scConnectBulk,
		higher("client → server", "Gbit/s"), higher("server → client", "Gbit/s"),
		lower("entry CPU", "s/GB"), info("tinyproxy CPU", "s/GB"))
	return rate, bulk
}

func rateSteps(e *env, t *table, echo int, proxy *proc) []connectStep {
	var steps []connectStep
	for i, n := range rateClients {
		label := fmt.Sprintf("%d client%s", n, plural(n))
		steps = append(steps, connectStep{t: t, label: label, target: func(*peer) int { return echo }, run: func(r *running) (int64, error, error) {
			cpu0 := cpuSeconds(proxy.pid())
			ok, fails, firstErr := clientLoop(n, tunnelWindow(e), tunnelDialer(r))
			secs := tunnelWindow(e).Seconds()
			t.metrics[i].add(r.p.name, float64(ok)/secs)
			if i == len(rateClients)-1 {
				t.metrics[len(rateClients)].add(r.p.name, (cpuSeconds(proxy.pid())-cpu0)/secs)
			}
			logf("   %s %-28s %-9s %7.0f tunnels/s (%d failed)", t.key, r.p.name, label, float64(ok)/secs, fails)
			return fails, firstErr, nil
		}})
	}
	return steps
}

// tunnelDialer opens one tunnel through r and echoes once: through the
// entry, or, without one, by speaking CONNECT to tinyproxy itself.
func tunnelDialer(r *running) func(buf []byte) error {
	addr := "127.0.0.1:" + strconv.Itoa(r.listen)
	if r.p.argv != nil {
		return func(buf []byte) error { return shortConn(addr, buf) }
	}
	proxyAddr := "127.0.0.1:" + strconv.Itoa(webProxy.port)
	return func(buf []byte) error { return connectShort(proxyAddr, addr, buf) }
}

// connectShort is shortConn through the web proxy: CONNECT target, the
// 200, then one 64-byte echo.
func connectShort(proxyAddr, target string, buf []byte) error {
	c, err := net.DialTimeout("tcp", proxyAddr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if _, err := c.Write(ping); err != nil {
		return err
	}
	_, err = io.ReadFull(br, buf[:len(ping)])
	return err
}

func bulkSteps(e *env, t *table, iperfs map[string]*running, proxy *proc) []connectStep {
	var steps []connectStep
	for i, dir := range [][]string{nil, {"-R"}} {
		label := t.metrics[i].name
		steps = append(steps, connectStep{t: t, label: label, target: func(p *peer) int { return iperfs[p.name].listen }, run: func(r *running) (int64, error, error) {
			tp0 := cpuSeconds(proxy.pid())
			res, c, err := iperf(e, r, dir...)
			if err != nil {
				return 0, nil, err
			}
			t.metrics[i].add(r.p.name, res.End.SumReceived.BitsPerSecond/1e9)
			if gb := res.End.SumReceived.Bytes / 1e9; gb > 0 {
				t.metrics[2].add(r.p.name, c.cpu/gb)
				t.metrics[3].add(r.p.name, (cpuSeconds(proxy.pid())-tp0)/gb)
			}
			logf("   %s %-28s %s %6.2f Gbit/s  entry cpu %.2fs", t.key, r.p.name, label,
				res.End.SumReceived.BitsPerSecond/1e9, c.cpu)
			return 0, nil, nil
		}})
	}
	return steps
}

// startWebProxy writes the tinyproxy configuration of bench/peers with this
// run's ports into the temp dir and starts tinyproxy on it.
func startWebProxy(e *env, p *peer, allowed []int) (*proc, error) {
	tmpl, err := os.ReadFile(filepath.Join(e.root, "bench/peers", webProxyConf))
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, port := range allowed {
		rules = append(rules, "ConnectPort "+strconv.Itoa(port))
	}
	conf := strings.NewReplacer("@PORT@", strconv.Itoa(webProxy.port),
		"@LOG@", filepath.Join(e.logDir, "tinyproxy.log"), "@PID@", filepath.Join(e.logDir, "tinyproxy.pid"),
		"@CONNECTPORTS@", strings.Join(rules, "\n")).Replace(string(tmpl))
	if err := os.WriteFile(filepath.Join(e.logDir, webProxyConf), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	argv := p.argv(webProxy.port, 0)
	pr, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	if err := waitListen(webProxy.port, pr, 5*time.Second); err != nil {
		stop(pr)
		return nil, fmt.Errorf("tinyproxy: %w", err)
	}
	argv[len(argv)-1] = "$TMP/" + webProxyConf // bench/peers' with the ports filled in
	e.recordCommand(p.name, nil, argv)
	return pr, nil
}

// tallies gathers what went wrong over the rounds per step and peer, so
// that a table gets one note per kind of trouble ("2 of 5 tests ...")
// instead of one per test.
type tallies struct {
	m     map[tallyKey]*tally
	order []tallyKey // first seen first, so that the notes come out in a stable order
}

type tallyKey struct {
	t          *table
	step, peer string
}

type tally struct {
	tests int
	kinds []string         // of trouble, first seen first
	hits  map[string]int   // tests that had it
	sum   map[string]int64 // how many in all (failed tunnels)
	first map[string]string
}

func (ts *tallies) get(s connectStep, peer string) *tally {
	k := tallyKey{s.t, s.label, peer}
	if ts.m == nil {
		ts.m = map[tallyKey]*tally{}
	}
	if ts.m[k] == nil {
		ts.m[k] = &tally{hits: map[string]int{}, sum: map[string]int64{}, first: map[string]string{}}
		ts.order = append(ts.order, k)
	}
	return ts.m[k]
}

// count records that peer ran one more test of s.
func (ts *tallies) count(s connectStep, peer string) { ts.get(s, peer).tests++ }

// add records a test of s in which peer had n troubles of kind what.
func (ts *tallies) add(s connectStep, peer, what string, n int64, detail string) {
	tl := ts.get(s, peer)
	if tl.hits[what] == 0 {
		tl.kinds = append(tl.kinds, what)
		tl.first[what] = detail
	}
	tl.hits[what]++
	tl.sum[what] += n
}

func (ts *tallies) write() {
	for _, k := range ts.order {
		tl := ts.m[k]
		for _, what := range tl.kinds {
			all := ""
			if tl.sum[what] != int64(tl.hits[what]) {
				all = fmt.Sprintf("%d in all; ", tl.sum[what])
			}
			k.t.note(k.peer, "%s: %d of %d tests %s (%sthe first: %s)", k.step, tl.hits[what], tl.tests, what, all, tl.first[what])
		}
	}
}

func peerNamed(peers []*peer, name string) *peer {
	for _, p := range peers {
		if p.name == name {
			return p
		}
	}
	return &peer{name: name, skip: "not in the cast"}
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
