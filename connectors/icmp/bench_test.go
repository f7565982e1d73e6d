package icmp

import (
	"strconv"
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// BenchmarkTunnels measures, in one network namespace, 4 MiB each way and
// 64-byte round trips through: nproxy's plain tcp relay, nproxy's icmp out
// → nproxy's icmp in, and ptunnel's client → ptunnel's proxy (with a
// password each time). It runs once (-benchtime is ignored): go test
// -run '^$' -bench Tunnels ./connectors/icmp/
func BenchmarkTunnels(b *testing.B) {
	ptunnel := nproxytest.Command(b, "ptunnel")
	if !inNetns(b) {
		return
	}
	server := nproxytest.MeasureServer(b)
	relay, icmpPort, ptunnelPort := nproxytest.FreePort(b), nproxytest.FreePort(b), nproxytest.FreePort(b)
	in := &In{Password: testPassword}
	nproxytest.Serve(b,
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: relay}, &tcp.Out{Host: "127.0.0.1", Port: server}),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: icmpPort}, &Out{ProxyHost: "127.0.0.1", Host: "127.0.0.1", Port: server, Password: testPassword}),
		nproxy.New(in, &tcp.Out{}))
	nproxytest.WaitListening(b, icmpPort)
	report := func(name string, port int) nproxytest.Measurement {
		m := nproxytest.Measure(b, port, 4<<20, 200)
		b.ReportMetric(m.Up, name+"-up-KiB/s")
		b.ReportMetric(m.Down, name+"-down-KiB/s")
		b.ReportMetric(float64(m.RTT.Microseconds()), name+"-rtt-µs")
		return m
	}
	report("tcp", relay)
	nproxyM := report("nproxy-icmp", icmpPort)
	nproxy.Stop() // ptunnel's proxy and nproxy's in would both answer ptunnel's client
	nproxytest.StartPeer(b, ptunnel, "-x", testPassword, "-v", "-1")
	nproxytest.StartPeer(b, ptunnel, "-p", "127.0.0.1", "-lp", strconv.Itoa(ptunnelPort), "-da", "127.0.0.1", "-dp", strconv.Itoa(server), "-x", testPassword, "-v", "-1")
	nproxytest.WaitListening(b, ptunnelPort)
	ptunnelM := report("ptunnel", ptunnelPort)
	b.ReportMetric(nproxyM.Up/ptunnelM.Up, "up-x-ptunnel")
	b.ReportMetric(nproxyM.Down/ptunnelM.Down, "down-x-ptunnel")
}
