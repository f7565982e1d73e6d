package icmp

import (
	"bytes"
	"os"
	"testing"

	"github.com/nproxy/nproxy/nproxytest"
)

// netnsEnv marks a test binary started inside a test's network namespace.
const netnsEnv = "NPROXY_ICMP_NETNS"

// inNetns reports whether the test body should run: true in the child that
// runs inside a network namespace of its own. In the parent it makes the
// namespace (its loopback up, the kernel's echo replies off, so that a
// ptunnel client and proxy can share it), runs the test binary there on
// this test alone, reports its outcome and removes the namespace.
func inNetns(tb testing.TB) bool {
	if os.Getenv(netnsEnv) != "" {
		return true
	}
	ns := nproxytest.NewNetns(tb, "icmp")
	ns.Run(tb, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
	only := []string{"-test.run", "^" + tb.Name() + "$", "-test.v", "-test.timeout=90s"}
	cmd := ns.Command(os.Args[0], only...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+string(ns))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PASS")) || bytes.Contains(out, []byte("FAIL")) {
		tb.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
	tb.Logf("in namespace %s:\n%s", ns, out)
	return false
}
