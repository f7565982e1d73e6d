package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The socks scenario (issue 13): the connection rate of nproxy's socks5 in
// against microsocks and Dante's danted, each client doing a whole SOCKS5
// CONNECT (no authentication) to the echo upstream; and the rate of a tcp
// relay reading a PROXY v1 header first against the plain tcp relay.

const (
	scSocks     = "socks5-rate"
	scSocksIdle = "socks5-idle"
	scProxyIn   = "proxyproto-rate"
	proxyInPeer = "nproxy-proxy-protocol"
	proxyIn1Seg = "nproxy-proxy-protocol-1seg"
	haproxyIn   = "haproxy-accept-proxy"
	haproxyBase = "haproxy-nbthread1"
	socksPeer   = "nproxy-socks5"
)

func socksCast(e *env) []*peer {
	danted := filepath.Join(e.logDir, "danted.conf")
	peers := []*peer{
		{name: socksPeer, only: set(scSocks, scSocksIdle), desc: "`nproxy --in type=socks5 --out type=tcp`, one loop, no authentication, allow `*:*`",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "--in", "type=socks5,host=127.0.0.1,port=" + strconv.Itoa(l), "--out", "type=tcp"}
			}},
		{name: "microsocks", only: set(scSocks, scSocksIdle), desc: "microsocks (Debian): a thread per client",
			argv: func(l, t int) []string { return []string{"microsocks", "-i", "127.0.0.1", "-p", strconv.Itoa(l)} }},
		{name: "danted", only: set(scSocks, scSocksIdle), desc: "Dante's danted 1.4 (Debian), `socksmethod: none`, logging to stderr, default process pools",
			argv: func(l, t int) []string {
				cfg := fmt.Sprintf("logoutput: stderr\ninternal: 127.0.0.1 port = %d\nexternal: 127.0.0.1\nsocksmethod: none\nclientmethod: none\n"+
					"user.privileged: root\nuser.unprivileged: nobody\nclient pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"+
					"socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n", l)
				os.WriteFile(danted, []byte(cfg), 0o644)
				return []string{"danted", "-f", danted}
			}},
		{name: nproxyName, only: set(scProxyIn), desc: "`nproxy --in type=tcp --out type=tcp`, one loop: the plain relay",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "--in", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(l), "--out", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(t)}
			}},
		{name: proxyInPeer, only: set(scProxyIn), desc: "the same with `proxy_protocol=v1`: each client sends a PROXY v1 header first",
			argv: proxyInArgv(e)},
		{name: proxyIn1Seg, only: set(scProxyIn), desc: "the same relay, each client sending its header and its 64 bytes in one write (one segment): " +
			"what is left of the header's cost when the client's extra segment is not counted", argv: proxyInArgv(e)},
		// haproxy, plain and with accept-proxy, under the same clients: the
		// header's cost to haproxy, the reference for nproxy's.
		{name: haproxyBase, only: set(scProxyIn), desc: "haproxy 2.6 tcp mode, nbthread 1 (bench/peers/haproxy-nbthread1.cfg): the plain relay haproxy's header cost is taken against",
			argv: haproxyArgv(e, "haproxy-nbthread1.cfg"), env: haproxyPorts},
		{name: haproxyIn, only: set(scProxyIn), desc: "the same haproxy with `accept-proxy` on its bind (bench/peers/proxyproto-haproxy.cfg): each client sends a PROXY v1 header first, as to " + proxyInPeer,
			argv: haproxyArgv(e, "proxyproto-haproxy.cfg"), env: haproxyPorts},
	}
	checkPeers(e, peers)
	return peers
}

// proxyInArgv runs a tcp relay that reads a PROXY v1 header first.
func proxyInArgv(e *env) func(l, t int) []string {
	return func(l, t int) []string {
		return []string{e.nproxyBin, "--in", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(l) + ",proxy_protocol=v1",
			"--out", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(t)}
	}
}

func runSocks(e *env, peers []*peer) ([]*table, error) {
	method := "%d concurrent Go clients, each in a loop: connect, %s, write 64 bytes, read the 64-byte echo, close; " +
		"%v per peer and round, %s; in a round all peers run and take " + strconv.Itoa(turns) + " turns each, so that others' load on the machine falls on them alike. " +
		"Upstream: evio echo. Relay CPU is utime+stime (children included) over the peer's turns, per connection; " +
		"load CPU is the same for the load generator (this process's clients) and the echo server together: what a connection costs the machine besides the relay."
	socksRate, socksCPU, socksLoad := higher("connections", "conn/s"), lower("relay CPU", "µs/conn"), info("load CPU", "µs/conn")
	socks := newTable(scSocks, "SOCKS5 connection rate", fmt.Sprintf(method, e.cfg.concurrency,
		"SOCKS5 greeting (no auth) and CONNECT to the echo server's IPv4 address", e.cfg.rateDur, rounds(e.cfg.rounds)), peers, scSocks, socksRate, socksCPU, socksLoad)
	ppRate, ppCPU, ppLoad := higher("connections", "conn/s"), lower("relay CPU", "µs/conn"), info("load CPU", "µs/conn")
	pp := newTable(scProxyIn, "PROXY protocol in: connection rate", fmt.Sprintf(method, e.cfg.concurrency,
		"a PROXY v1 header (for "+proxyInPeer+" and "+haproxyIn+" only)", e.cfg.rateDur, rounds(e.cfg.rounds))+
		" The ratios are "+proxyInPeer+" ÷ each peer; the notes give the header's cost, the ratio of each relay with a header to the same relay without, "+
		"for nproxy and for haproxy.", peers, scProxyIn, ppRate, ppCPU, ppLoad)
	pp.ref = proxyInPeer
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	for round := 0; round < e.cfg.rounds; round++ {
		slicedRound(e, peers, socks, round, echo, socksRate, socksCPU, socksLoad)
		slicedRound(e, peers, pp, round, echo, ppRate, ppCPU, ppLoad)
	}
	for _, other := range []string{"microsocks", "danted"} {
		pairedRatios(socks, socksRate, socksPeer, other)
	}
	rateCeiling(socks, socksCPU, socksLoad, socksPeer, "microsocks")
	pairedRatios(pp, ppRate, proxyInPeer, nproxyName)
	pairedRatios(pp, ppRate, proxyIn1Seg, nproxyName)
	pairedRatios(pp, ppRate, haproxyIn, haproxyBase)
	return []*table{socks, pp, socksIdle(e, peers, echo.listen)}, nil
}

// turns is how many turns each peer of a rate table takes in a round.
const turns = 6

// slicedRound measures the connection rate of t's peers once: all of them
// run, and take turns of rateDur/turns each, so that the load others put
// on the shared machine, which changes from second to second, falls on
// each peer alike. A relay's CPU is counted over its own turns only (it
// idles in the others').
func slicedRound(e *env, peers []*peer, t *table, round int, echo *running, rate, cpu, load *metric) {
	target := echo.listen
	var relays []*running
	for _, p := range rotated(peers, round) {
		if !p.in(t.key) {
			continue
		}
		r, err := launch(e, p, target)
		if err != nil {
			t.note(p.name, "did not start: %v", err)
			logf("   %s %s: did not start: %v", t.key, p.name, err)
			continue
		}
		defer r.stop()
		relays = append(relays, r)
	}
	turn := e.cfg.rateDur / turns
	ok, fails := make([]int64, len(relays)), make([]int64, len(relays))
	cpuSecs, loadSecs := make([]float64, len(relays)), make([]float64, len(relays))
	firstErr := make([]error, len(relays))
	for range turns {
		for i, r := range relays {
			cpu0, load0 := cpuSeconds(r.pid()), loadSeconds(echo)
			n, failed, err := clientLoop(e.cfg.concurrency, turn, preambleConn(r, target))
			cpuSecs[i] += cpuSeconds(r.pid()) - cpu0
			loadSecs[i] += loadSeconds(echo) - load0
			ok[i], fails[i] = ok[i]+n, fails[i]+failed
			if firstErr[i] == nil {
				firstErr[i] = err
			}
		}
	}
	for i, r := range relays {
		perSec := float64(ok[i]) / (turn * turns).Seconds()
		rate.add(r.p.name, perSec)
		if ok[i] > 0 {
			cpu.add(r.p.name, cpuSecs[i]/float64(ok[i])*1e6)
			load.add(r.p.name, loadSecs[i]/float64(ok[i])*1e6)
		}
		logf("   %s round %d %-22s %8.0f conn/s  (%d failed)", t.key, round+1, r.p.name, perSec, fails[i])
		switch {
		case fails[i] > 0:
			t.note(r.p.name, "%d connections failed in round %d, first: %v%s", fails[i], round+1, firstErr[i], relaySaid(r))
		case r.proc != nil && r.proc.exited():
			t.note(r.p.name, "the relay died during round %d", round+1)
		}
	}
}

// relaySaid is what r's relay logged last, for the note on failed
// connections: a client's error alone (a reset) does not tell a refused
// header from a server the relay could not reach, and the relay's log is
// gone once the run ends.
func relaySaid(r *running) string {
	if r.proc == nil {
		return ""
	}
	b, err := os.ReadFile(r.proc.log)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "; the relay logged nothing"
	}
	return "; the relay's last lines: " + lastLines(string(b), 2)
}

// loadSeconds is the CPU time the load has used so far: this process (the
// clients; its children are not counted, getrusage's RUSAGE_SELF) and the
// echo server.
func loadSeconds(echo *running) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano())/1e9 + cpuSeconds(echo.pid())
}

// rateCeiling notes, under t, what the machine allows a's rate to be
// against b's while the CPU is the limit: a connection costs b's relay and
// b's load; with a, a's load and a's relay. Even a relay taking no CPU at
// all cannot pass the quotient of b's whole cost by a's load, and a ratio
// of 2 needs a's relay under half b's whole cost less a's load.
func rateCeiling(t *table, cpu, load *metric, a, b string) {
	la, lb, cb := summarize(load.vals[a]).med, summarize(load.vals[b]).med, summarize(cpu.vals[b]).med
	if la == 0 || lb == 0 || cb == 0 {
		return
	}
	t.note(b, "CPU bound on %s ÷ %s: %s costs %.0f µs/conn (relay %.0f + load %.0f); the load alone with %s costs %.0f: "+
		"a relay taking no CPU would reach at most %.2f× %s's rate, and 2× needs a relay of at most %.0f µs/conn",
		a, b, b, cb+lb, cb, lb, a, la, (cb+lb)/la, b, (cb+lb)/2-la)
}

// pairedRatios notes, under t, m's ratio of peer a to peer b round by
// round: the two ran one after the other, so a ratio of the same round is
// less shaken by the others' load on the machine than a ratio of medians.
func pairedRatios(t *table, m *metric, a, b string) {
	va, vb := m.vals[a], m.vals[b]
	if len(va) == 0 || len(va) != len(vb) {
		return
	}
	ratios := make([]float64, len(va))
	text := make([]string, len(va))
	for i := range va {
		ratios[i] = va[i] / vb[i]
		text[i] = fmt.Sprintf("%.2f", ratios[i])
	}
	t.note(b, "%s ÷ %s, %s round by round: %s (median %.2f)", a, b, m.name, strings.Join(text, ", "), summarize(ratios).med)
}

// socksIdle measures what idle SOCKS5 connections cost each server, as the
// idle scenario does for plain relays.
func socksIdle(e *env, peers []*peer, upstream int) *table {
	n := e.cfg.idleConns
	t := newTable(scSocksIdle, fmt.Sprintf("Idle cost, %d SOCKS5 connections", n), fmt.Sprintf(
		"As the idle scenario, each connection negotiated (no auth, CONNECT to the echo server) and echoed once before the next, "+
			"then held idle; growth of the server's VmRSS, Pss and fds per connection. %s.", rounds(e.cfg.idleRounds)),
		peers, scSocksIdle, lower("RSS", "KiB/conn"), lower("PSS", "KiB/conn"), lower("fds", "fds/conn"), info("fds left after close", "fds"))
	for round := 0; round < e.cfg.idleRounds; round++ {
		eachRelay(e, peers, scSocksIdle, t, round, upstream, func(r *running) error {
			addr := "127.0.0.1:" + strconv.Itoa(r.listen)
			open := func(buf []byte) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					return nil, err
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if err := socksConnect(c, upstream); err != nil {
					c.Close()
					return nil, err
				}
				if err := echoOnce(c, buf); err != nil {
					c.Close()
					return nil, err
				}
				c.SetDeadline(time.Time{})
				return c, nil
			}
			warm, err := open(make([]byte, len(ping)))
			if err != nil {
				return fmt.Errorf("warm-up connection: %w", err)
			}
			warm.Close()
			return holdIdle(r, t, n, e.cfg.idleLimit, 1, open, func(c net.Conn) net.Conn { return c })
		})
	}
	return t
}

// preambleConn is one short connection through r, with what r's peer wants
// first: a SOCKS5 negotiation, a PROXY header, or nothing.
func preambleConn(r *running, target int) func(buf []byte) error {
	addr := "127.0.0.1:" + strconv.Itoa(r.listen)
	header := []byte(fmt.Sprintf("PROXY TCP4 192.0.2.1 127.0.0.1 4242 %d\r\n", r.listen))
	var first func(c net.Conn) error
	echo := echoOnce
	switch {
	case r.p.only[scSocks]:
		first = func(c net.Conn) error { return socksConnect(c, target) }
	case r.p.name == proxyInPeer || r.p.name == haproxyIn:
		first = func(c net.Conn) error { _, err := c.Write(header); return err }
	case r.p.name == proxyIn1Seg:
		first = func(net.Conn) error { return nil }
		withPing := append(header[:len(header):len(header)], ping...)
		echo = func(c net.Conn, buf []byte) error {
			if _, err := c.Write(withPing); err != nil {
				return err
			}
			_, err := io.ReadFull(c, buf[:len(ping)])
			return err
		}
	default:
		return func(buf []byte) error { return shortConn(addr, buf) }
	}
	return func(buf []byte) error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := first(c); err != nil {
			return err
		}
		return echo(c, buf)
	}
}

// socksConnect negotiates no authentication and CONNECTs to 127.0.0.1:port,
// waiting for each answer as curl does.
func socksConnect(c net.Conn, port int) error {
	var reply [10]byte // a reply with an IPv4 address
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, reply[:2]); err != nil || reply[1] != 0 {
		return fmt.Errorf("greeting refused: % x %v", reply[:2], err)
	}
	req := []byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 0}
	binary.BigEndian.PutUint16(req[8:], uint16(port))
	if _, err := c.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, reply[:]); err != nil || reply[1] != 0 {
		return fmt.Errorf("CONNECT refused: % x %v", reply, err)
	}
	return nil
}
