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
			argv: func(l, t int) []string {
				return []string{e.nproxyBin, "--in", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(l) + ",proxy_protocol=v1",
					"--out", "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(t)}
			}},
	}
	checkPeers(e, peers)
	return peers
}

func runSocks(e *env, peers []*peer) ([]*table, error) {
	method := "%d concurrent Go clients, each in a loop: connect, %s, write 64 bytes, read the 64-byte echo, close; " +
		"%v per peer and round, %s; in a round all peers run and take " + strconv.Itoa(turns) + " turns each, so that others' load on the machine falls on them alike. " +
		"Upstream: evio echo. Relay CPU is utime+stime (children included) over the peer's turns, per connection."
	socksRate, socksCPU := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	socks := newTable(scSocks, "SOCKS5 connection rate", fmt.Sprintf(method, e.cfg.concurrency,
		"SOCKS5 greeting (no auth) and CONNECT to the echo server's IPv4 address", e.cfg.rateDur, rounds(e.cfg.rounds)), peers, scSocks, socksRate, socksCPU)
	ppRate, ppCPU := higher("connections", "conn/s"), lower("relay CPU", "µs/conn")
	pp := newTable(scProxyIn, "PROXY protocol in: connection rate", fmt.Sprintf(method, e.cfg.concurrency,
		"a PROXY v1 header (for "+proxyInPeer+" only)", e.cfg.rateDur, rounds(e.cfg.rounds))+
		" The ratios are "+proxyInPeer+" ÷ the plain relay: the header's cost.", peers, scProxyIn, ppRate, ppCPU)
	pp.ref = proxyInPeer
	echo, err := startEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	for round := 0; round < e.cfg.rounds; round++ {
		slicedRound(e, peers, socks, round, echo.listen, socksRate, socksCPU)
		slicedRound(e, peers, pp, round, echo.listen, ppRate, ppCPU)
	}
	for _, other := range []string{"microsocks", "danted"} {
		pairedRatios(socks, socksRate, socksPeer, other)
	}
	pairedRatios(pp, ppRate, proxyInPeer, nproxyName)
	return []*table{socks, pp, socksIdle(e, peers, echo.listen)}, nil
}

// turns is how many turns each peer of a rate table takes in a round.
const turns = 6

// slicedRound measures the connection rate of t's peers once: all of them
// run, and take turns of rateDur/turns each, so that the load others put
// on the shared machine, which changes from second to second, falls on
// each peer alike. A relay's CPU is counted over its own turns only (it
// idles in the others').
func slicedRound(e *env, peers []*peer, t *table, round, target int, rate, cpu *metric) {
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
	ok, fails, cpuSecs := make([]int64, len(relays)), make([]int64, len(relays)), make([]float64, len(relays))
	firstErr := make([]error, len(relays))
	for range turns {
		for i, r := range relays {
			cpu0 := cpuSeconds(r.pid())
			n, failed, err := clientLoop(e.cfg.concurrency, turn, preambleConn(r, target))
			cpuSecs[i] += cpuSeconds(r.pid()) - cpu0
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
		}
		logf("   %s round %d %-22s %8.0f conn/s  (%d failed)", t.key, round+1, r.p.name, perSec, fails[i])
		switch {
		case fails[i] > 0:
			t.note(r.p.name, "%d connections failed in round %d, first: %v", fails[i], round+1, firstErr[i])
		case r.proc != nil && r.proc.exited():
			t.note(r.p.name, "the relay died during round %d", round+1)
		}
	}
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
	var first func(c net.Conn) error
	switch {
	case r.p.only[scSocks]:
		first = func(c net.Conn) error { return socksConnect(c, target) }
	case r.p.name == proxyInPeer:
		header := []byte(fmt.Sprintf("PROXY TCP4 192.0.2.1 127.0.0.1 4242 %d\r\n", r.listen))
		first = func(c net.Conn) error { _, err := c.Write(header); return err }
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
		return echoOnce(c, buf)
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
