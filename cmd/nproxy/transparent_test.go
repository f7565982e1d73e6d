package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// TestTransparent: client (10.13.1.2) → nproxy (10.13.1.1 | 10.13.2.1) →
// backend (10.13.2.2), each in a namespace of its own. With transparent=1
// the backend sees the client's own address; without, nproxy's. The proxy
// namespace has the routing transparent mode needs: packets coming back
// from the backend side are delivered locally (to the transparent socket)
// instead of being forwarded to the client.
func TestTransparent(t *testing.T) {
	socat := nproxytest.Command(t, "socat")
	cli, prx, srv := nproxytest.NewNetns(t, "c"), nproxytest.NewNetns(t, "p"), nproxytest.NewNetns(t, "s")
	prx.IP(t, "link", "add", "c0", "type", "veth", "peer", "name", "p0", "netns", string(cli))
	prx.IP(t, "link", "add", "s0", "type", "veth", "peer", "name", "p0", "netns", string(srv))
	prx.IP(t, "addr", "add", "10.13.1.1/24", "dev", "c0")
	prx.IP(t, "addr", "add", "10.13.2.1/24", "dev", "s0")
	cli.IP(t, "addr", "add", "10.13.1.2/24", "dev", "p0")
	srv.IP(t, "addr", "add", "10.13.2.2/24", "dev", "p0")
	for _, up := range []struct {
		n   nproxytest.Netns
		dev string
	}{{prx, "c0"}, {prx, "s0"}, {cli, "p0"}, {srv, "p0"}} {
		up.n.IP(t, "link", "set", up.dev, "up")
	}
	cli.IP(t, "route", "add", "default", "via", "10.13.1.1")
	srv.IP(t, "route", "add", "default", "via", "10.13.2.1")
	prx.IP(t, "rule", "add", "iif", "s0", "lookup", "113")
	prx.IP(t, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "113")

	backend := startCmd(t, srv.Command(socat, "TCP-LISTEN:9000,reuseaddr,fork", "SYSTEM:echo $SOCAT_PEERADDR"), false)
	waitListeningIn(t, backend, 9000)
	for _, tc := range []struct {
		transparent string
		port        int
		want        string
	}{{"1", 7001, "10.13.1.2"}, {"0", 7000, "10.13.2.1"}} {
		t.Run("transparent="+tc.transparent, func(t *testing.T) {
			cmd := prx.Command(nproxyBin, "--in", fmt.Sprintf("type=tcp,host=10.13.1.1,port=%d", tc.port),
				"--out", "type=tcp,host=10.13.2.2,port=9000,transparent="+tc.transparent)
			cmd.Env = environWithoutProxy()
			p := startCmd(t, cmd, true)
			waitListeningIn(t, p, tc.port)
			client := cli.Command(socat, "-T5", "-", fmt.Sprintf("TCP:10.13.1.1:%d", tc.port))
			client.Stdin = strings.NewReader("")
			client.WaitDelay = time.Second
			out, err := client.CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
				t.Fatalf("the backend saw %q (%v), want %s", got, err, tc.want)
			}
		})
	}
}

// waitListeningIn waits until p listens on port in its own network
// namespace, as /proc/PID/net/tcp shows it.
func waitListeningIn(t *testing.T, p *child, port int) {
	t.Helper()
	suffix := fmt.Sprintf(":%04X 00000000:0000 0A", port)
	mustEventually(t, 10*time.Second, fmt.Sprintf("%s to listen on port %d", p.name, port), func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", p.pid()))
		return strings.Contains(string(b), suffix)
	})
}
