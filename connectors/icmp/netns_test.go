package icmp

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
	if _, ok := tb.(*testing.B); ok {
		only = []string{"-test.run", "^$", "-test.bench", "^" + tb.Name() + "$", "-test.benchtime", "1x", "-test.timeout=300s"}
	}
	cmd := exec.Command(ip, append([]string{"netns", "exec", name, os.Args[0]}, only...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PASS")) || bytes.Contains(out, []byte("FAIL")) {
		tb.Fatalf("in namespace %s: %v\n%s", name, err, out)
	}
	tb.Logf("in namespace %s:\n%s", name, out)
	return false
}

// startPeer starts a program whose output goes to the test's log on failure.
func startPeer(t testing.TB, path string, args ...string) {
	var out nproxytest.LogBuffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", path, out.String())
		}
	})
}

// echoThrough sends n random bytes to port while reading them back, and
// checks they come back byte-exact. It does not half-close: ptunnel ends a
// session at its client's EOF, whatever is still in flight.
func echoThrough(t *testing.T, port, n int) {
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	payload := make([]byte, n)
	rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		for p := payload; len(p) > 0; {
			k := min(len(p), 1+rand.Intn(32<<10))
			if _, err := c.Write(p[:k]); err != nil {
				werr <- err
				return
			}
			p = p[k:]
		}
		werr <- nil
	}()
	got := make([]byte, n)
	start := time.Now()
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the echo differs from what was sent")
	}
	t.Logf("%d bytes each way in %v", n, time.Since(start))
}
