package dnstunnel

import (
	"strconv"
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// BenchmarkTunnels measures 1 MiB each way and 64-byte round trips through
// nproxy's plain tcp relay and through the dns tunnel via a real dnsmasq.
// It runs once: go test -run '^$' -bench Tunnels ./connectors/dnstunnel/
func BenchmarkTunnels(b *testing.B) {
	server := nproxytest.MeasureServer(b)
	relay, tunnel := nproxytest.FreePort(b), nproxytest.FreePort(b)
	inPort := nproxytest.FreePort(b)
	resolver := dnsmasq(b, inPort)
	nproxytest.Serve(b,
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: relay}, &tcp.Out{Host: "127.0.0.1", Port: server}),
		nproxy.New(&In{Host: "127.0.0.1", Port: inPort, Domain: testDomain, Key: testKey}, &tcp.Out{Host: "127.0.0.1", Port: server}),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: tunnel}, &Out{Domain: testDomain, Key: testKey, Resolver: "127.0.0.1:" + strconv.Itoa(resolver)}))
	nproxytest.WaitListening(b, tunnel)
	for _, p := range []struct {
		name string
		port int
	}{{"tcp", relay}, {"dns", tunnel}} {
		m := nproxytest.Measure(b, p.port, 1<<20, 100)
		b.ReportMetric(m.Up, p.name+"-up-KiB/s")
		b.ReportMetric(m.Down, p.name+"-down-KiB/s")
		b.ReportMetric(float64(m.RTT.Microseconds()), p.name+"-rtt-µs")
	}
}
