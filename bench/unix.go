package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
)

// The unix scenario (issue 10): the unix connector measured as a chain, TCP
// in → unix socket → TCP out, so that iperf3 and the Go clients, which
// speak TCP, can drive it; every byte crosses the relay twice (tcp → unix,
// unix → tcp), both halves in one relay process (two for socat). And the
// exec connector's connection rate, a process per client, against socat's
// EXEC.

const (
	scUnixBulk = "unix-bulk"
	scUnixRate = "unix-rate"
	scExecRate = "exec-rate"
)

func unixCast(e *env) []*peer {
	sock := func(name string) string { return filepath.Join(e.logDir, name+".sock") }
	ports := func(l, t int) (string, string) { return strconv.Itoa(l), strconv.Itoa(t) }
	unixOnly := set(scUnixBulk, scUnixRate)
	peers := []*peer{
		{name: "nproxy-unix", only: unixOnly,
			desc: "nproxy, one loop, two proxies in one process: `--in tcp --out unix,path=S` and `--in unix,path=S --out tcp`; spliced",
			argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				s := sock("nproxy")
				return []string{e.nproxyBin,
					"--in", "type=tcp,host=127.0.0.1,port=" + ls, "--out", "type=unix,path=" + s,
					"--in", "type=unix,path=" + s, "--out", "type=tcp,host=127.0.0.1,port=" + ts}
			}},
		{name: "haproxy-unix", only: unixOnly,
			desc: "haproxy 2.6 tcp mode, nbthread 1, splice forced: a TCP frontend to a `unix@` server, a `bind unix@` frontend to the TCP upstream (bench/peers/unix-haproxy.cfg)",
			argv: func(l, t int) []string {
				return []string{"haproxy", "-db", "-f", filepath.Join(e.root, "bench/peers/unix-haproxy.cfg")}
			},
			env: func(l, t int) []string {
				ls, ts := ports(l, t)
				return []string{"NP_LISTEN=" + ls, "NP_TARGET=" + ts, "NP_SOCKET=" + sock("haproxy")}
			}},
		{name: "socat-unix", only: unixOnly, forks: true,
			desc: "two socat, fork per connection, default 8 KiB buffer: `TCP-LISTEN,fork UNIX-CONNECT:S` and `UNIX-LISTEN:S,fork TCP:upstream`",
			argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				s := sock("socat")
				return []string{"sh", "-c", fmt.Sprintf("socat UNIX-LISTEN:%s,fork,unlink-early,backlog=4096 TCP:127.0.0.1:%s & "+
					"exec socat TCP-LISTEN:%s,bind=127.0.0.1,reuseaddr,fork,backlog=4096 UNIX-CONNECT:%s", s, ts, ls, s)}
			}},
		{name: "nproxy-exec", only: set(scExecRate),
			desc: "nproxy, one loop, `--out type=exec,argv=cat`: a cat per connection on a socketpair, reaped through a pidfd",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "--in", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(l), "--out", "type=exec,argv=cat"}
			}},
		{name: "socat-exec", only: set(scExecRate), forks: true,
			desc: "socat `TCP-LISTEN,fork EXEC:cat`: a fork, then a fork and exec of cat, per connection",
			argv: func(l, t int) []string {
				return []string{"socat", "TCP-LISTEN:" + strconv.Itoa(l) + ",bind=127.0.0.1,reuseaddr,fork,backlog=4096", "EXEC:cat"}
			}},
	}
	checkPeers(e, peers)
	return peers
}

func runUnix(e *env, peers []*peer) ([]*table, error) {
	gbps, cpuGB := higher("throughput", "Gbit/s"), lower("relay CPU", "s/GB")
	bulk := newTable(scUnixBulk, "unix: bulk throughput, TCP → unix → TCP", fmt.Sprintf(
		"`iperf3 -c -t %d -P 1 -J` through the chain to `iperf3 -s`; Gbit/s as received. CPU is utime+stime of the relay's process "+
			"(children included) per GB. %s, peers interleaved.", e.cfg.bulkSecs, rounds(e.cfg.rounds)), peers, scUnixBulk, gbps, cpuGB)
	rate, cpuConn := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	unixRate := newTable(scUnixRate, "unix: connection rate, TCP → unix → TCP", rateMethod(e), peers, scUnixRate, rate, cpuConn)
	xrate, xcpu := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	// Its own peers only: a table's reference is its first nproxy peer.
	execPeers := slices.DeleteFunc(slices.Clone(peers), func(p *peer) bool { return !p.in(scExecRate) })
	execRate := newTable(scExecRate, "exec: connection rate, a cat per connection", rateMethod(e)+" The upstream is the child, cat.",
		execPeers, scExecRate, xrate, xcpu)

	servers, err := startIperfServers(e, peers, scUnixBulk)
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	if err != nil {
		return nil, err
	}
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	for round := 0; round < e.cfg.rounds; round++ {
		for _, p := range rotated(peers, round) {
			if !p.in(scUnixBulk) {
				continue
			}
			res, c, err := bulkOnce(e, p, servers[p.name].listen, 1, nil)
			if err != nil {
				bulk.note(p.name, "%v", err)
				logf("   %s %s: %v", scUnixBulk, p.name, err)
				continue
			}
			gbps.add(p.name, res.End.SumReceived.BitsPerSecond/1e9)
			if gb := res.End.SumReceived.Bytes / 1e9; gb > 0 {
				cpuGB.add(p.name, c.cpu/gb)
			}
			logf("   %s round %d %-14s %6.2f Gbit/s  cpu %.2fs", scUnixBulk, round+1, p.name, res.End.SumReceived.BitsPerSecond/1e9, c.cpu)
		}
		rateRound(e, peers, scUnixRate, unixRate, round, echo.listen, rate, cpuConn)
		rateRound(e, peers, scExecRate, execRate, round, echo.listen, xrate, xcpu)
	}
	return []*table{bulk, unixRate, execRate}, nil
}

func rateMethod(e *env) string {
	return fmt.Sprintf("%d concurrent Go clients, each in a loop: connect, write 64 bytes, read the 64-byte echo, close; %v per round, %s, "+
		"peers interleaved. Relay CPU is utime+stime (children included) over the window, per connection.",
		e.cfg.concurrency, e.cfg.rateDur, rounds(e.cfg.rounds))
}
