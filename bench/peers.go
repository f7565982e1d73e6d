package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Scenario names, used as keys by peers and in the report.
const (
	scBulk1    = "bulk-1"
	scBulk8    = "bulk-8"
	scRate     = "connrate"
	scLatency  = "latency"
	scIdle     = "idle"
	scSlowRead = "slowreader"
)

// peer is one relay under test (or the direct connection).
type peer struct {
	name string
	desc string
	// argv builds the command line for a relay listening on listen and
	// forwarding to target; nil for the direct connection.
	argv func(listen, target int) []string
	env  func(listen, target int) []string
	only map[string]bool // scenarios it takes part in; nil = all but bulk-only ones
	skip string          // why it cannot run on this machine, if it cannot
	// forks: one process per connection, whose counters leave with it.
	forks bool
	// udp: it listens on a UDP port, not a TCP one.
	udp bool
}

func (p *peer) in(sc string) bool {
	if p.skip != "" {
		return false
	}
	if p.only != nil {
		return p.only[sc]
	}
	return true
}

// nproxyName is the peer every ratio of the plain relay scenarios is taken against.
const nproxyName = "nproxy"

// isNproxy tells nproxy's own peers (whatever mode) from the others.
func isNproxy(name string) bool {
	return name == nproxyName || strings.HasPrefix(name, nproxyName+"-")
}

// checkPeers skips the peers this machine cannot run (nproxy did not
// build, a program is not installed) and those left out by -peers; nproxy's
// own peers are always kept, so every table has its reference.
func checkPeers(e *env, peers []*peer) {
	for _, p := range peers {
		switch {
		case p.skip != "" || p.argv == nil:
		case isNproxy(p.name) && e.nproxyBin == "":
			p.skip = "nproxy did not build: " + e.nproxyErr
		default:
			if _, err := exec.LookPath(p.argv(1, 2)[0]); err != nil {
				p.skip = p.argv(1, 2)[0] + " not installed"
			}
		}
	}
	if e.only == "" {
		return
	}
	keep := set(strings.Split(e.only, ",")...)
	for _, p := range peers {
		if !keep[p.name] && !isNproxy(p.name) && p.skip == "" {
			p.skip = "left out by -peers"
		}
	}
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// peerSet returns the peers, the nproxy build and Net::Proxy fetch done.
func peerSet(e *env) []*peer {
	self := e.self
	ports := func(l, t int) (string, string) { return strconv.Itoa(l), strconv.Itoa(t) }
	socat := func(extra ...string) func(l, t int) []string {
		return func(l, t int) []string {
			ls, ts := ports(l, t)
			return append(append([]string{"socat"}, extra...),
				"TCP-LISTEN:"+ls+",bind=127.0.0.1,reuseaddr,fork,backlog=4096",
				"TCP:127.0.0.1:"+ts)
		}
	}
	role := func(r string) func(l, t int) []string {
		return func(l, t int) []string {
			ls, ts := ports(l, t)
			return []string{self, "-role", r, "-listen", ls, "-target", ts}
		}
	}
	nproxy := func(extra ...string) func(l, t int) []string {
		return func(l, t int) []string {
			ls, ts := ports(l, t)
			return append([]string{e.nproxyBin,
				"--in", "type=tcp,host=127.0.0.1,port=" + ls,
				"--out", "type=tcp,host=127.0.0.1,port=" + ts}, extra...)
		}
	}
	peers := []*peer{
		{name: "direct", desc: "no proxy: the clients straight to the upstream, the ceiling of any relay",
			only: set(scBulk1, scBulk8, scRate, scLatency)},
		{name: nproxyName, desc: "nproxy, one loop (default)", argv: nproxy()},
		{name: "nproxy-loops2", desc: "nproxy --loops 2 (SO_REUSEPORT, one loop per core)",
			argv: nproxy("--loops", "2"), only: set(scBulk8, scRate, scLatency)},
		{name: "nproxy-observed", desc: "nproxy --metrics --access-log FILE: one access line per connection to a file, Prometheus metrics served, default verbosity",
			argv: func(l, t int) []string {
				return nproxy("--metrics", "127.0.0.1:"+strconv.Itoa(freePort()),
					"--access-log", filepath.Join(e.logDir, "nproxy-access.log"))(l, t)
			}, only: set(scBulk1, scBulk8, scRate, scLatency)},
		{name: "haproxy-nbthread1", desc: "haproxy 2.6 tcp mode, nbthread 1, splice forced (bench/peers/haproxy-nbthread1.cfg)",
			argv: haproxyArgv(e, "haproxy-nbthread1.cfg"), env: haproxyPorts},
		{name: "haproxy-default", desc: "haproxy 2.6 tcp mode, default threads (2 here), splice forced (bench/peers/haproxy-default.cfg)",
			argv: haproxyArgv(e, "haproxy-default.cfg"), env: haproxyPorts},
		{name: "naive-go", desc: "goroutine per direction, io.Copy, half-close (bench/naive); io.Copy splices, and each blocked copy holds a pipe, so an idle connection costs 6 fds", argv: role("naive")},
		{name: "gnet", desc: "gnet v2 relay, one event loop (bench/gnetrelay); gnet gives it no backpressure, no half-close, no splice and dials in a worker goroutine", argv: role("gnet")},
		{name: "socat", desc: "socat TCP-LISTEN,fork (one process per connection), default 8 KiB buffer", argv: socat(), forks: true},
		// The buffer size changes nothing for idle connections (measured: the
		// same 60 KiB of PSS each), so the 5,000 forks are not done twice.
		{name: "socat-b64k", desc: "socat -b 65536, fork", argv: socat("-b", "65536"), forks: true,
			only: set(scBulk1, scBulk8, scRate, scLatency, scSlowRead)},
		{name: "netproxy-perl", desc: "Net::Proxy 0.12 (Debian libnet-proxy-perl) via bench/peers/netproxy.pl: select loop, listen backlog 1, " +
			"blocking connect and blocking writes of 4 KiB; SIGPIPE ignored, else it dies at the first write to a closed peer",
			argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				return []string{"perl", filepath.Join(e.root, "bench/peers/netproxy.pl"), ls, ts}
			},
			env: func(l, t int) []string { return []string{"PERL5LIB=" + e.perlLib} }},
	}
	for _, p := range peers {
		switch {
		case strings.HasPrefix(p.name, "nproxy-loops") && e.nproxyBin != "" && !e.nproxyLoops:
			p.skip = "this nproxy has no --loops flag"
		case p.name == "netproxy-perl" && e.perlLib == "":
			p.skip = "Net::Proxy unavailable: " + e.perlErr
		}
	}
	checkPeers(e, peers)
	return peers
}

// haproxyArgv runs haproxy with cfg from bench/peers; haproxyPorts gives it
// its ports.
func haproxyArgv(e *env, cfg string) func(l, t int) []string {
	return func(l, t int) []string {
		return []string{"haproxy", "-db", "-f", filepath.Join(e.root, "bench/peers", cfg)}
	}
}

func haproxyPorts(l, t int) []string {
	return []string{"NP_LISTEN=" + strconv.Itoa(l), "NP_TARGET=" + strconv.Itoa(t)}
}

// running is a started relay.
type running struct {
	p      *peer
	proc   *proc // nil for direct
	listen int
	argv   []string
}

// launch starts peer p in front of target and waits until it listens.
func launch(e *env, p *peer, target int) (*running, error) {
	if p.argv == nil {
		return &running{p: p, listen: target}, nil
	}
	listen := freePort()
	argv := p.argv(listen, target)
	var envv []string
	if p.env != nil {
		envv = p.env(listen, target)
	}
	pr, err := start(e.logDir, envv, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	wait := waitListen
	if p.udp {
		wait = waitUDPBound
	}
	if err := wait(listen, pr, 10e9); err != nil {
		stop(pr)
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	e.recordCommand(p.name, envv, argv)
	return &running{p: p, proc: pr, listen: listen, argv: argv}, nil
}

func (r *running) pid() int {
	if r.proc == nil {
		return 0
	}
	return r.proc.pid()
}

func (r *running) stop() { stop(r.proc) }

// netProxyLib finds Net::Proxy: installed, or unpacked from the Debian
// package into cache (the package conflicts with sslh, so it is not installed).
func netProxyLib(cache string) (string, error) {
	if exec.Command("perl", "-MNet::Proxy", "-e1").Run() == nil {
		return "/usr/share/perl5", nil
	}
	lib := filepath.Join(cache, "usr/share/perl5")
	if _, err := os.Stat(filepath.Join(lib, "Net/Proxy.pm")); err == nil {
		return lib, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	dl := exec.Command("apt-get", "download", "libnet-proxy-perl")
	dl.Dir = cache
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download libnet-proxy-perl: %v: %s", err, lastLines(string(out), 2))
	}
	debs, _ := filepath.Glob(filepath.Join(cache, "libnet-proxy-perl_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download left no .deb in %s", cache)
	}
	if out, err := exec.Command("dpkg", "-x", debs[0], cache).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg -x: %v: %s", err, out)
	}
	return lib, nil
}
