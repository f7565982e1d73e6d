package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// netPair is two network namespaces joined by a veth pair: the icmp
// tunnels cross a real link (MTU 1500) between a client side and a server
// side, as they would between two hosts, and their raw ICMP sockets see
// nobody else's packets.
type netPair struct {
	client, server     string // namespace names
	clientIP, serverIP string
}

// newNetPair makes the two namespaces. The kernel's own echo replies are
// off in both, so that only the tunnel's server answers a tunnel's echo
// requests (ptunnel's proxy and nproxy's icmp in both answer from user space).
func newNetPair() (*netPair, error) {
	id := os.Getpid() % 100000
	n := &netPair{client: fmt.Sprintf("npbench-c%d", id), server: fmt.Sprintf("npbench-s%d", id),
		clientIP: "10.231.0.1", serverIP: "10.231.0.2"}
	vc, vs := fmt.Sprintf("npbc%d", id), fmt.Sprintf("npbs%d", id) // at most 15 bytes
	steps := [][]string{
		{"netns", "add", n.client},
		{"netns", "add", n.server},
		{"link", "add", vc, "netns", n.client, "type", "veth", "peer", "name", vs, "netns", n.server},
		{"-n", n.client, "addr", "add", n.clientIP + "/24", "dev", vc},
		{"-n", n.server, "addr", "add", n.serverIP + "/24", "dev", vs},
		{"-n", n.client, "link", "set", vc, "up"},
		{"-n", n.server, "link", "set", vs, "up"},
		{"-n", n.client, "link", "set", "lo", "up"},
		{"-n", n.server, "link", "set", "lo", "up"},
		{"netns", "exec", n.client, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"},
		{"netns", "exec", n.server, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"},
	}
	onCleanup(n.remove)
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			n.remove()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return n, nil
}

// remove deletes both namespaces (the veth pair goes with them); the
// processes inside are the harness's and are killed by pid before.
func (n *netPair) remove() {
	exec.Command("ip", "netns", "delete", n.client).Run()
	exec.Command("ip", "netns", "delete", n.server).Run()
}

// inNetns prefixes argv with `ip netns exec ns`.
func inNetns(ns string, argv ...string) []string {
	if ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}
