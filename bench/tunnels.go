package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The tunnels scenario (issues 12 and 16): one stream's throughput each
// way, the round trip of 64 bytes and the time to open a new connection
// through each of nproxy's tunnels, against the programs they interoperate
// with and the plain tcp relay on the same path:
//
//   - tunnels-http, on 127.0.0.1: the plain relay (the ceiling), nproxy
//     httptunnel single and mux, GNU htc → hts;
//   - tunnels-icmp, across a veth pair between two network namespaces:
//     two plain relays (one per side, the ceiling), nproxy icmp out → in,
//     ptunnel's client → proxy;
//   - tunnels-dns, on 127.0.0.1: nproxy dns out → a real dnsmasq → dns in.
//
// The client and the measurement server are sub-processes of the harness
// (-role tunnel-client, -role measure; measure.go), inside the namespaces
// for icmp.

const (
	scTunnels    = "tunnels"
	scTunnelHTTP = "tunnels-http"
	scTunnelICMP = "tunnels-icmp"
	scTunnelDNS  = "tunnels-dns"
)

const (
	tunnelKey    = "s3cret" // httptunnel mux key, icmp password, dns key
	tunnelDomain = "t.example"
)

// tunnelPeer is one path through a tunnel.
type tunnelPeer struct {
	*peer
	ns   string // the client side's network namespace; "" for the host
	hold bool   // time new connections while one stays open (mux: a new stream over the open session)
}

// tunnelSetup is what the scenario's paths share: the namespaces and the
// resolver's ports, fixed before the peers' command lines are built.
type tunnelSetup struct {
	net                *netPair
	netErr             error
	dnsIn, dnsmasqPort int
}

func tunnelCast(e *env, s *tunnelSetup) []*tunnelPeer {
	port := strconv.Itoa
	tcp := func(host string, p int) string { return "type=tcp,host=" + host + ",port=" + port(p) }
	httptunnel := func(extra string) func(l, t int) []string {
		return func(l, t int) []string {
			mid := "type=httptunnel,host=127.0.0.1,port=" + port(freePort()) + extra
			return []string{e.nproxyBin, "--in", tcp("127.0.0.1", l), "--out", mid, "--in", mid, "--out", tcp("127.0.0.1", t)}
		}
	}
	// both starts the server side in its namespace in the background and
	// the client side in the foreground, in one process group.
	n := s.net
	if n == nil {
		n = &netPair{}
	}
	both := func(server, client []string) []string {
		return []string{"sh", "-c", shellJoin(inNetns(n.server, server...)) + " & exec " + shellJoin(inNetns(n.client, client...))}
	}
	icmpOnly, httpOnly := set(scTunnelICMP), set(scTunnelHTTP)
	peers := []*tunnelPeer{
		{peer: &peer{name: "nproxy-httptunnel-mux", only: httpOnly, argv: httptunnel(",mux=1,key=" + tunnelKey),
			desc: "nproxy tcp in → httptunnel out (mux=1) → httptunnel in (mux=1) → tcp out, both proxies in one process"}, hold: true},
		{peer: &peer{name: "nproxy-httptunnel", only: httpOnly, argv: httptunnel(""),
			desc: "nproxy tcp in → httptunnel out → httptunnel in → tcp out (GNU httptunnel's protocol, one tunnel per connection), one process"}},
		{peer: &peer{name: "htc-hts", only: httpOnly, desc: "GNU httptunnel 3.3: `htc -w -F L` → `hts -w -F 127.0.0.1:T`, a tunnel per connection, one connection at a time (htc's -F takes a port only: it listens on every address)",
			argv: func(l, t int) []string {
				mid := "127.0.0.1:" + port(freePort())
				return []string{"sh", "-c", fmt.Sprintf("hts -w -F 127.0.0.1:%d %s & exec htc -w -F %d %s", t, mid, l, mid)}
			}}},
		{peer: &peer{name: nproxyName, only: httpOnly, desc: "nproxy, one loop (default)",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "--in", tcp("127.0.0.1", l), "--out", tcp("127.0.0.1", t)}
			}}},
		{peer: &peer{name: "nproxy-icmp", only: icmpOnly, desc: "nproxy tcp in → icmp out in the client namespace, icmp in → tcp out in the server namespace (PingTunnel 0.72's protocol)",
			argv: func(l, t int) []string {
				return both([]string{e.nproxyBin, "--in", "type=icmp,password=" + tunnelKey, "--out", "type=tcp"},
					[]string{e.nproxyBin, "--in", tcp("127.0.0.1", l), "--out",
						"type=icmp,proxy_host=" + n.serverIP + ",host=127.0.0.1,port=" + port(t) + ",password=" + tunnelKey})
			}}, ns: n.client},
		{peer: &peer{name: "ptunnel", only: icmpOnly, desc: "PingTunnel 0.72: `ptunnel -p SERVER -lp L -da 127.0.0.1 -dp T -x PASS` in the client namespace, `ptunnel -x PASS` in the server namespace",
			argv: func(l, t int) []string {
				return both([]string{"ptunnel", "-x", tunnelKey, "-v", "-1"},
					[]string{"ptunnel", "-p", n.serverIP, "-lp", port(l), "-da", "127.0.0.1", "-dp", port(t), "-x", tunnelKey, "-v", "-1"})
			}}, ns: n.client},
		{peer: &peer{name: "nproxy-tcp-veth", only: icmpOnly, desc: "two plain nproxy relays across the same veth pair, one per namespace: the ceiling of the icmp tunnels",
			argv: func(l, t int) []string {
				mid := freePort()
				return both([]string{e.nproxyBin, "--in", tcp(n.serverIP, mid), "--out", tcp("127.0.0.1", t)},
					[]string{e.nproxyBin, "--in", tcp("127.0.0.1", l), "--out", tcp(n.serverIP, mid)})
			}}, ns: n.client},
		{peer: &peer{name: "nproxy-dns", only: set(scTunnelDNS), desc: "nproxy tcp in → dns out → dnsmasq (forwarding the domain) → dns in → tcp out, both proxies in one process",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin,
					"--in", "type=dns,host=127.0.0.1,port=" + port(s.dnsIn) + ",domain=" + tunnelDomain + ",key=" + tunnelKey, "--out", tcp("127.0.0.1", t),
					"--in", tcp("127.0.0.1", l), "--out", "type=dns,domain=" + tunnelDomain + ",key=" + tunnelKey + ",resolver=127.0.0.1:" + port(s.dnsmasqPort)}
			}}},
	}
	var plain []*peer
	for _, p := range peers {
		plain = append(plain, p.peer)
	}
	checkPeers(e, plain)
	need := map[string][]string{"htc-hts": {"htc", "hts"}, "ptunnel": {"ptunnel"}, "nproxy-dns": {"dnsmasq"}}
	for _, p := range peers {
		for _, prog := range need[p.name] {
			if _, err := exec.LookPath(prog); err != nil && p.skip == "" {
				p.skip = prog + " not installed"
			}
		}
		if p.ns != "" && s.netErr != nil && p.skip == "" {
			p.skip = "no network namespaces: " + s.netErr.Error()
		}
	}
	return peers
}

// shellJoin quotes argv for sh -c.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// tunnelsScenario builds the namespaces when its peers are asked for, so
// that the cast and the run share them.
func tunnelsScenario() scenario {
	s := &tunnelSetup{}
	var cast []*tunnelPeer
	return scenario{name: scTunnels,
		cast: func(e *env) []*peer {
			s.net, s.netErr = newNetPair()
			if s.netErr != nil {
				logf("   tunnels: %v", s.netErr)
			}
			s.dnsIn, s.dnsmasqPort = freePort(), freePort()
			cast = tunnelCast(e, s)
			var peers []*peer
			for _, p := range cast {
				peers = append(peers, p.peer)
			}
			return peers
		},
		run: func(e *env, _ []*peer) ([]*table, error) {
			if s.net != nil {
				defer s.net.remove()
			}
			return runTunnels(e, s, cast)
		}}
}

func runTunnels(e *env, s *tunnelSetup, peers []*tunnelPeer) ([]*table, error) {
	var plain []*peer
	for _, p := range peers {
		plain = append(plain, p.peer)
	}
	window, n := time.Second, 50
	nRounds := 1
	if e.cfg.mode == "full" {
		window, n, nRounds = 3*time.Second, 200, 2
	}
	method := fmt.Sprintf("Four steps, each on a tunnel started for it: up to %d round trips of 64 bytes on one connection (p50); up to %d new connections one after the other, each timed from the dial "+
		"to its first 64-byte echo (at most %v of them, at least 5 samples; every echo checked byte for byte); one connection each way, "+
		"the client writing (reading) as fast as it can for %v, counted by the other end from its first byte, and ended by a reset. A failed step is "+
		"noted under the table; the others count. Client and server are sub-processes of the harness (-role tunnel-client, "+
		"-role measure). %s, a fresh tunnel for each measurement, peers interleaved.", n, n, sampleTime, window, rounds(nRounds))
	type group struct {
		key, title, unit string
		scale            float64
		extra            string
	}
	groups := []group{
		{scTunnelHTTP, "Tunnels over HTTP: httptunnel against GNU htc/hts and the plain relay", "MB/s", 1e6,
			" On 127.0.0.1. For nproxy-httptunnel-mux the new connections are timed while the round-trip connection stays open: each is a new stream over the open session."},
		{scTunnelICMP, "Tunnels over ICMP: nproxy against ptunnel", "KiB/s", 1024,
			" Across a veth pair (MTU 1500) between two network namespaces; client and relay's client side in one, server and the tunnel's server side in the other; the kernel's echo replies off in both."},
		{scTunnelDNS, "Tunnel over DNS, through dnsmasq", "KiB/s", 1024,
			" On 127.0.0.1: nproxy's dns out queries a real dnsmasq (`--server=/" + tunnelDomain + "/127.0.0.1#IN`), which forwards to nproxy's dns in. The plain relay on the same path is the nproxy row of the tunnels-http table."},
	}
	var tables []*table
	type ms struct{ up, down, rtt, s50, s99 *metric }
	mets := map[string]ms{}
	tabs := map[string]*table{}
	for _, g := range groups {
		m := ms{higher("client → server", g.unit), higher("server → client", g.unit), lower("round trip p50", "µs"),
			lower("new connection p50", "µs"), lower("new connection p99", "µs")}
		// Its own peers only: a table's reference is its first nproxy peer.
		own := slices.DeleteFunc(slices.Clone(plain), func(p *peer) bool { return !p.in(g.key) })
		t := newTable(g.key, g.title, method+g.extra, own, g.key, m.up, m.down, m.rtt, m.s50, m.s99)
		if len(t.peers) == 0 {
			continue
		}
		tables, mets[g.key], tabs[g.key] = append(tables, t), m, t
	}
	servers, started, err := tunnelServers(e, s, peers)
	defer func() {
		for _, p := range started {
			stop(p)
		}
	}()
	if err != nil {
		return tables, err
	}
	for round := 0; round < nRounds; round++ {
		for _, g := range groups {
			t := tabs[g.key]
			if t == nil {
				continue
			}
			for _, p := range rotatedTunnels(peers, round) {
				if !p.in(g.key) {
					continue
				}
				res, err := tunnelOnce(e, p, servers[p.ns], window, n)
				if err != nil {
					t.note(p.name, "round %d: %v", round+1, err)
					logf("   %s %s: %v", g.key, p.name, err)
				}
				if res == nil {
					continue
				}
				// What was measured before a failure counts.
				m := mets[g.key]
				for _, v := range []struct {
					m *metric
					v float64
				}{{m.up, res.Up / g.scale}, {m.down, res.Down / g.scale}, {m.rtt, res.RTT}, {m.s50, res.SetupP50}, {m.s99, res.SetupP99}} {
					if v.v > 0 {
						v.m.add(p.name, v.v)
					}
				}
				logf("   %s round %d %-22s up %s down %s %s  rtt %.0fµs  new conn %.0fµs", g.key, round+1, p.name,
					num(res.Up/g.scale), num(res.Down/g.scale), g.unit, res.RTT, res.SetupP50)
			}
		}
	}
	return tables, nil
}

// rotatedTunnels is rotated for tunnel peers.
func rotatedTunnels(peers []*tunnelPeer, round int) []*tunnelPeer {
	out := make([]*tunnelPeer, 0, len(peers))
	for i := range peers {
		out = append(out, peers[(i+round)%len(peers)])
	}
	return out
}

// tunnelServers starts the measurement server on the host and in the
// server namespace (keyed by the client namespace whose paths lead there),
// and dnsmasq when a dns path runs; it returns them all, to be stopped.
func tunnelServers(e *env, s *tunnelSetup, peers []*tunnelPeer) (map[string]int, []*proc, error) {
	servers := map[string]int{}
	var started []*proc
	for _, p := range peers {
		if p.skip != "" {
			continue
		}
		if _, ok := servers[p.ns]; !ok {
			serverNs := ""
			if p.ns != "" {
				serverNs = s.net.server
			}
			port := freePort()
			argv := inNetns(serverNs, e.self, "-role", "measure", "-listen", strconv.Itoa(port))
			pr, err := start(e.logDir, nil, argv[0], argv[1:]...)
			if err != nil {
				return nil, started, err
			}
			started = append(started, pr)
			if err := waitListenIn(serverNs, port, pr, 5*time.Second); err != nil {
				return nil, started, err
			}
			servers[p.ns] = port
		}
		if p.name == "nproxy-dns" {
			pr, err := startDnsmasq(e, s)
			if pr != nil {
				started = append(started, pr)
			}
			if err != nil {
				p.skip = "dnsmasq did not start: " + err.Error()
			}
		}
	}
	return servers, started, nil
}

// startDnsmasq starts the resolver between nproxy's dns out and in: it
// forwards the tunnel's domain to the dns in, and answers nothing else.
func startDnsmasq(e *env, s *tunnelSetup) (*proc, error) {
	argv := []string{"dnsmasq", "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--port=" + strconv.Itoa(s.dnsmasqPort), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--server=/" + tunnelDomain + "/127.0.0.1#" + strconv.Itoa(s.dnsIn), "--user=root", "--pid-file="}
	p, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	return p, waitUDPBound(s.dnsmasqPort, p, 5*time.Second)
}

// tunnelOnce measures p: each step on a fresh tunnel, started for it and
// stopped after. A failed step is reported; the others still run.
func tunnelOnce(e *env, p *tunnelPeer, server int, window time.Duration, n int) (*tunnelResult, error) {
	var res tunnelResult
	var errs []string
	for _, step := range tunnelSteps {
		r, err := tunnelStep(e, p, server, step, window, n)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		res.Up, res.Down, res.RTT = res.Up+r.Up, res.Down+r.Down, res.RTT+r.RTT
		res.SetupP50, res.SetupP99 = res.SetupP50+r.SetupP50, res.SetupP99+r.SetupP99
	}
	if len(errs) > 0 {
		return &res, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return &res, nil
}

// tunnelStep starts p, runs one step of the client through it and stops it.
func tunnelStep(e *env, p *tunnelPeer, server int, step string, window time.Duration, n int) (*tunnelResult, error) {
	listen := freePort()
	argv := p.argv(listen, server)
	pr, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	defer stop(pr)
	if err := waitListenIn(p.ns, listen, pr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("%s: did not start: %w", step, err)
	}
	e.recordCommand(p.name, nil, argv)
	client := inNetns(p.ns, e.self, "-role", "tunnel-client", "-target", strconv.Itoa(listen), "-step", step,
		"-dur", window.String(), "-n", strconv.Itoa(n), "-hold="+strconv.FormatBool(p.hold))
	var res tunnelResult
	// A window or a sampling limit, and the time outs of a stalled step.
	if err := clientProcess(e, window+sampleTime+3*opTimeout, &res, client...); err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if pr.exited() {
		return nil, fmt.Errorf("%s: the tunnel died during the measurement", step)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("%s", res.Error)
	}
	return &res, nil
}

// waitListenIn is waitListen inside a network namespace.
func waitListenIn(ns string, port int, p *proc, timeout time.Duration) error {
	if ns == "" {
		return waitListen(port, p, timeout)
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, _ := exec.Command("ip", inNetns(ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))[1:]...).Output()
		if len(strings.TrimSpace(string(out))) > 0 {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v", filepath.Base(p.cmd.Path), p.cmd.ProcessState)
		}
	}
	return fmt.Errorf("nothing listens on port %d in %s after %v", port, ns, timeout)
}
