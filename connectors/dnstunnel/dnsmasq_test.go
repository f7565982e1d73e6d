package dnstunnel

import (
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

const (
	testDomain = "t.example"
	testKey    = "s3cret"
)

// dnsmasq starts a real dnsmasq on 127.0.0.1 that forwards testDomain to
// 127.0.0.1#upstream, and returns its port.
func dnsmasq(t testing.TB, upstream int) int {
	path := nproxytest.Command(t, "dnsmasq")
	port := nproxytest.FreePort(t)
	nproxytest.StartPeer(t, path, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--port="+strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--server=/"+testDomain+"/127.0.0.1#"+strconv.Itoa(upstream), "--user=root", "--pid-file=")
	nproxytest.WaitListening(t, port)
	return port
}

// startTunnel starts dns in (behind a UDP port that dnsmasq forwards to, through
// shim if set) → tcp out to target, and tcp in → dns out through dnsmasq;
// it returns the tcp in's port.
func startTunnel(t *testing.T, target int, shim func(t *testing.T, to int) int) (int, *In, *Out) {
	inPort := nproxytest.FreePort(t)
	forward := inPort
	if shim != nil {
		forward = shim(t, inPort)
	}
	resolver := dnsmasq(t, forward)
	in := &In{Host: "127.0.0.1", Port: inPort, Domain: testDomain, Key: testKey}
	out := &Out{Domain: testDomain, Key: testKey, Resolver: "127.0.0.1:" + strconv.Itoa(resolver)}
	port := nproxytest.FreePort(t)
	nproxytest.Serve(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: target}),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	nproxytest.WaitListening(t, port)
	return port, in, out
}

func TestThroughDnsmasq(t *testing.T) {
	nproxytest.CaptureLog(t, 2)
	port, _, _ := startTunnel(t, nproxytest.EchoServer(t), nil)
	nproxytest.EchoThrough(t, port, 1<<20, true, 30*time.Second)
}

// A path that truncates answers beyond 512 bytes (a scripted middlebox
// between dnsmasq and the server: it sets TC and drops the records, as a
// server does for a client without EDNS0): the client asks again for less,
// and the stream still arrives byte-exact.
func TestTruncatingPath(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	truncate := func(b []byte) []byte {
		m := new(dns.Msg)
		if len(b) <= 512 || m.Unpack(b) != nil {
			return b
		}
		m.Truncated, m.Answer = true, nil
		out, _ := m.Pack()
		return out
	}
	var stats shimStats
	port, _, out := startTunnel(t, nproxytest.EchoServer(t), func(t *testing.T, to int) int { return lossShim(t, to, 0, &stats, truncate) })
	t.Cleanup(func() {
		t.Logf("client: truncated %d, malformed %d, unknown %d", out.Stats.Truncated.Load(), out.Stats.Malformed.Load(), out.Stats.Unknown.Load())
	})
	nproxytest.EchoThrough(t, port, 64<<10, true, 30*time.Second)
	if out.Stats.Truncated.Load() == 0 {
		t.Fatal("no answer came back truncated: the fallback was not exercised")
	}
}
