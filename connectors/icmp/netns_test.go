package icmp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/nproxy/nproxy/nproxytest"
)

// netnsEnv marks a test binary started inside a test's network namespace.
const netnsEnv = "NPROXY_ICMP_NETNS"

var netnsCount atomic.Int32

// inNetns reports whether the test body should run: true in the child that
// runs inside a network namespace of its own. In the parent it makes the
// namespace (its loopback up, the kernel's echo replies off, so that a
// ptunnel client and proxy can share it), runs the test binary there on
// this test alone, reports its outcome and removes the namespace.
func inNetns(tb testing.TB) bool {
	if os.Getenv(netnsEnv) != "" {
		return true
	}
	ip := nproxytest.Command(tb, "ip")
	name := fmt.Sprintf("nproxy-icmp-%d-%d", os.Getpid(), netnsCount.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		nproxytest.Unavailable(tb, "cannot make a network namespace (root needed): %v: %s", err, out)
	}
	tb.Cleanup(func() { exec.Command(ip, "netns", "delete", name).Run() })
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"},
	} {
		if out, err := exec.Command(ip, append([]string{"netns", "exec", name}, args...)...).CombinedOutput(); err != nil {
			tb.Fatalf("%v in namespace %s: %v: %s", args, name, err, out)
		}
	}
	only := []string{"-test.run", "^" + tb.Name() + "$", "-test.v", "-test.timeout=90s"}
	cmd := exec.Command(ip, append([]string{"netns", "exec", name, os.Args[0]}, only...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PASS")) || bytes.Contains(out, []byte("FAIL")) {
		tb.Fatalf("in namespace %s: %v\n%s", name, err, out)
	}
	tb.Logf("in namespace %s:\n%s", name, out)
	return false
}
