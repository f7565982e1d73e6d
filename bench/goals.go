package main

import (
	"fmt"
	"math"
)

// issueTargets are the benchmark goals of issues 10 to 18, one row each,
// computed from the medians of the scenarios' tables. A scenario that did
// not run leaves its rows "not measured".
func (r *report) issueTargets() []target {
	atLeast := func(g float64) func(float64) bool { return func(v float64) bool { return v >= g } }
	atMost := func(g float64) func(float64) bool { return func(v float64) bool { return v <= g } }
	ratio := func(key, m, a, b string) float64 { return r.med(key, m, a) / r.med(key, m, b) }
	// both is the worse of a ratio taken each way (client → server and back).
	both := func(key, a, b string) float64 {
		return math.Min(ratio(key, "client → server", a, b), ratio(key, "server → client", a, b))
	}
	var udpRate, udpNaive, udpLoss float64 = math.Inf(1), math.Inf(1), math.Inf(-1)
	for _, key := range []string{"udp-64-1", "udp-64-64", "udp-1400-1", "udp-1400-64"} {
		udpRate = math.Min(udpRate, ratio(key, "rate", "nproxy-udp", "socat-udp"))
		udpNaive = math.Min(udpNaive, ratio(key, "rate", "nproxy-udp", "naive-go-udp"))
		udpLoss = math.Max(udpLoss, r.med(key, "loss", "nproxy-udp"))
	}
	lost := func(key, peer string) float64 { return r.med(key, "lost", peer) }
	ts := []target{
		{what: "#10 unix bulk ÷ haproxy-unix", value: ratio(scUnixBulk, "throughput", "nproxy-unix", "haproxy-unix"), ok: atLeast(1), goal: "≥ 1"},
		{what: "#10 unix bulk ÷ socat-unix", value: ratio(scUnixBulk, "throughput", "nproxy-unix", "socat-unix"), ok: atLeast(2), goal: "≥ 2"},
		{what: "#10 exec connection rate ÷ socat-exec", value: ratio(scExecRate, "connections", "nproxy-exec", "socat-exec"), ok: atLeast(1), goal: "≥ 1"},
		{what: "#11 udp datagrams/s ÷ socat-udp (worst of 4 loads)", value: udpRate, ok: atLeast(3), goal: "≥ 3"},
		{what: "#11 udp datagrams/s ÷ naive-go-udp (worst of 4 loads)", value: udpNaive, ok: atLeast(1), goal: "≥ 1"},
		{what: "#11 udp loss, % (worst of 4 loads)", value: udpLoss, ok: atMost(0), goal: "0"},
		{what: "#11 udp idle flow, RSS KiB per added flow", value: r.med("udp-idle", "RSS per added flow", "nproxy-udp"), ok: atMost(1), goal: "≤ 1 (plus its socket, kernel memory)"},
		{what: "#12 httptunnel mux ÷ plain relay, one stream (worse direction)", value: both(scTunnelHTTP, "nproxy-httptunnel-mux", nproxyName), ok: atLeast(0.5), goal: "≥ 0.5"},
		{what: "#12 httptunnel mux ÷ htc-hts, one stream (worse direction)", value: both(scTunnelHTTP, "nproxy-httptunnel-mux", "htc-hts"), ok: atLeast(10), goal: "≥ 10"},
		{what: "#12 httptunnel mux, new stream over an open session, p50 (ms)", value: r.med(scTunnelHTTP, "new connection p50", "nproxy-httptunnel-mux") / 1e3, ok: func(v float64) bool { return v < 1 }, goal: "< 1"},
		{what: "#13 socks5 connection rate ÷ microsocks", value: ratio(scSocks, "connections", "nproxy-socks5", "microsocks"), ok: atLeast(2), goal: "≥ 2"},
		{what: "#13 socks5 connection rate ÷ danted", value: ratio(scSocks, "connections", "nproxy-socks5", "danted"), ok: atLeast(1), goal: "≥ 1"},
		{what: "#13 idle socks5 connection, RSS KiB", value: r.med(scSocksIdle, "RSS", "nproxy-socks5"), ok: atMost(1.5), goal: "≤ 1.5"},
		{what: "#13 PROXY header in: connection rate ÷ plain relay", value: ratio(scProxyIn, "connections", proxyInPeer, nproxyName), ok: atLeast(0.95),
			goal: "≥ 0.95 (haproxy accept-proxy ÷ haproxy: " + decimal(ratio(scProxyIn, "connections", haproxyIn, haproxyBase)) + ")"},
		{what: "#14 observed (metrics + access log) ÷ plain: bulk 1 stream", value: ratio(scBulk1, "throughput", "nproxy-observed", nproxyName), ok: atLeast(0.98), goal: "≥ 0.98"},
		{what: "#14 observed ÷ plain: bulk 8 streams", value: ratio(scBulk8, "throughput", "nproxy-observed", nproxyName), ok: atLeast(0.98), goal: "≥ 0.98"},
		{what: "#14 observed ÷ plain: connection rate", value: ratio(scRate, "connections", "nproxy-observed", nproxyName), ok: atLeast(0.95), goal: "≥ 0.95"},
		{what: "#14 observed ÷ plain: latency p50", value: ratio(scLatency, "p50", "nproxy-observed", nproxyName), ok: atMost(1.02), goal: "≤ 1.02 (within noise)"},
		{what: "#15 three servers with checks ÷ one server: connection rate", value: ratio(scFleetRate, "connections", "nproxy-balance3", "nproxy-1server"), ok: atLeast(0.95), goal: "≥ 0.95"},
		{what: fmt.Sprintf("#15 connections lost during %d reloads (SIGHUP)", fleetReloads), value: lost(scFleetReload, "nproxy-balance3"), ok: atMost(0),
			goal: "0 (haproxy -sf: " + count(lost(scFleetReload, "haproxy-fleet")) + ")"},
		{what: "#16 icmp tunnel ÷ ptunnel, one stream (worse direction)", value: both(scTunnelICMP, "nproxy-icmp", "ptunnel"), ok: atLeast(2), goal: "≥ 2"},
		{what: "#16 dns tunnel through dnsmasq, server → client (KiB/s)", value: r.med(scTunnelDNS, "server → client", "nproxy-dns"), ok: atLeast(200), goal: "≥ 200"},
		{what: "#16 dns tunnel through dnsmasq, client → server (KiB/s)", value: r.med(scTunnelDNS, "client → server", "nproxy-dns"), ok: atLeast(50), goal: "≥ 50"},
		{what: "#18.1 latency: relay CPU per round trip ÷ haproxy-nbthread1", value: ratio(scLatency, "relay CPU", nproxyName, "haproxy-nbthread1"), ok: atMost(0.75), goal: "≤ 0.75"},
		{what: "#18.1 connection rate: relay CPU per connection ÷ haproxy-nbthread1", value: ratio(scRate, "relay CPU", nproxyName, "haproxy-nbthread1"), ok: atMost(0.8), goal: "≤ 0.8"},
		{what: "#18.1 connection rate, clients closing with a reset: relay CPU per connection ÷ haproxy-nbthread1", value: ratio(scRate+closeRST.suffix(), "relay CPU", nproxyName, "haproxy-nbthread1"), ok: atMost(0.8), goal: "≤ 0.8"},
		{what: "#18.3 TLS server → client MB/s ÷ haproxy-ssl-nbthread1", value: ratio(scTLSBulk, "server → client", "nproxy-ssl", "haproxy-ssl-nbthread1"), ok: atLeast(1), goal: "≥ 1"},
		{what: "#18.3 TLS relay CPU per GB, server → client ÷ haproxy-ssl-nbthread1", value: ratio(scTLSBulk, "relay CPU, down", "nproxy-ssl", "haproxy-ssl-nbthread1"), ok: atMost(1), goal: "≤ 1"},
		{what: "#18.3 TLS relay CPU per full handshake ÷ haproxy-ssl-nbthread1", value: ratio(scTLSHandshakes, "relay CPU", "nproxy-ssl", "haproxy-ssl-nbthread1"), ok: atMost(0.9), goal: "≤ 0.9"},
	}
	for _, l := range []struct{ key, np, hp, loops, what string }{
		{scLive1, nproxyName, "haproxy-live-nbthread1", "1 loop", "1 loop ÷ haproxy nbthread 1"},
		{scLive2, "nproxy-loops2", "haproxy-live-nbthread2", "2 loops", "2 loops ÷ haproxy nbthread 2"},
	} {
		ts = append(ts,
			target{what: fmt.Sprintf("#18.4 %s live connections, p99, %s", grouped(livePairs), l.what), value: ratio(l.key, "p99", l.np, l.hp), ok: atMost(0.8), goal: "≤ 0.8"},
			target{what: fmt.Sprintf("#18.4 %s live connections, RSS per connection, %s", grouped(livePairs), l.what), value: ratio(l.key, "RSS", l.np, l.hp), ok: atMost(0.5), goal: "≤ 0.5"},
			target{what: fmt.Sprintf("#18.4 %s live connections, connections lost, %s", grouped(livePairs), l.loops), value: lost(l.key, l.np), ok: atMost(0), goal: "0"})
	}
	return ts
}

// decimal writes a ratio with two decimals, or "—" when not measured.
func decimal(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

// count writes a median count as a whole number, or "—" when not measured.
func count(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}
