package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// netns is a network namespace a test created; it is deleted when the test
// ends.
type netns string

func (n netns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", string(n)}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n, strings.Join(args, " "), err, out)
	}
}

func (n netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(n), name}, args...)...)
}

// newNetns creates a namespace with lo up, or ends the test as
// Unavailable where namespaces cannot be made.
func newNetns(t *testing.T, name string) netns {
	t.Helper()
	nproxytest.Command(t, "ip")
	name = fmt.Sprintf("np13%s%d", name, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		nproxytest.Unavailable(t, "cannot create a network namespace (root needed): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	n := netns(name)
	n.ip(t, "link", "set", "lo", "up")
	return n
}

// TestTransparent: client (10.13.1.2) → nproxy (10.13.1.1 | 10.13.2.1) →
// backend (10.13.2.2), each in a namespace of its own. With transparent=1
// the backend sees the client's own address; without, nproxy's. The proxy
// namespace has the routing transparent mode needs: packets coming back
// from the backend side are delivered locally (to the transparent socket)
// instead of being forwarded to the client.
func TestTransparent(t *testing.T) {
	socat := nproxytest.Command(t, "socat")
	cli, prx, srv := newNetns(t, "c"), newNetns(t, "p"), newNetns(t, "s")
	prx.ip(t, "link", "add", "c0", "type", "veth", "peer", "name", "p0", "netns", string(cli))
	prx.ip(t, "link", "add", "s0", "type", "veth", "peer", "name", "p0", "netns", string(srv))
	prx.ip(t, "addr", "add", "10.13.1.1/24", "dev", "c0")
	prx.ip(t, "addr", "add", "10.13.2.1/24", "dev", "s0")
	cli.ip(t, "addr", "add", "10.13.1.2/24", "dev", "p0")
	srv.ip(t, "addr", "add", "10.13.2.2/24", "dev", "p0")
	for _, up := range []struct {
		n   netns
		dev string
	}{{prx, "c0"}, {prx, "s0"}, {cli, "p0"}, {srv, "p0"}} {
		up.n.ip(t, "link", "set", up.dev, "up")
	}
	cli.ip(t, "route", "add", "default", "via", "10.13.1.1")
	srv.ip(t, "route", "add", "default", "via", "10.13.2.1")
	prx.ip(t, "rule", "add", "iif", "s0", "lookup", "113")
	prx.ip(t, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "113")

	backend := startCmd(t, srv.command(socat, "TCP-LISTEN:9000,reuseaddr,fork", "SYSTEM:echo $SOCAT_PEERADDR"), false)
	waitListeningIn(t, backend, 9000)
	for _, tc := range []struct {
		transparent string
		port        int
		want        string
	}{{"1", 7001, "10.13.1.2"}, {"0", 7000, "10.13.2.1"}} {
		t.Run("transparent="+tc.transparent, func(t *testing.T) {
			cmd := prx.command(nproxyBin, "--in", fmt.Sprintf("type=tcp,host=10.13.1.1,port=%d", tc.port),
				"--out", "type=tcp,host=10.13.2.2,port=9000,transparent="+tc.transparent)
			cmd.Env = environWithoutProxy()
			p := startCmd(t, cmd, true)
			waitListeningIn(t, p, tc.port)
			client := cli.command(socat, "-T5", "-", fmt.Sprintf("TCP:10.13.1.1:%d", tc.port))
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
