package nproxytest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace a test made with ip netns; its value is the
// namespace's name.
type Netns string

// netnsPrefix begins the name of every namespace NewNetns makes:
// nproxytest-<pid>-<n>-<role>, so that one left by a killed test binary
// can be told from one in use.
const netnsPrefix = "nproxytest-"

var netnsCount atomic.Int32

// NewNetns creates a network namespace with its loopback up, named after
// role, and deletes it when the test ends. It ends the test with
// Unavailable where namespaces cannot be made (root is needed). It first
// deletes the namespaces of test binaries that died before their cleanup
// (one killed by its timeout runs none).
func NewNetns(t testing.TB, role string) Netns {
	t.Helper()
	ip := Command(t, "ip")
	removeStaleNetns()
	ns := Netns(fmt.Sprintf("%s%d-%d-%s", netnsPrefix, os.Getpid(), netnsCount.Add(1), role))
	if out, err := exec.Command(ip, "netns", "add", string(ns)).CombinedOutput(); err != nil {
		Unavailable(t, "cannot make a network namespace (root needed): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", string(ns)).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// removeStaleNetns deletes the namespaces NewNetns made for processes that
// no longer exist.
func removeStaleNetns() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// IP runs ip -n ns args, and fails t if it fails.
func (ns Netns) IP(t testing.TB, args ...string) {
	t.Helper()
	ns.run(t, exec.Command("ip", append([]string{"-n", string(ns)}, args...)...))
}

// Run runs the program name with args inside ns, and fails t if it fails.
func (ns Netns) Run(t testing.TB, name string, args ...string) {
	t.Helper()
	ns.run(t, ns.Command(name, args...))
}

func (ns Netns) run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
	}
}

// Command returns the command that runs the program name with args inside
// ns (through ip netns exec).
func (ns Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(ns), name}, args...)...)
}

// Do runs f on a thread that entered ns: sockets f creates belong to ns
// and keep working from any thread. The thread is not reused: the
// goroutine ends locked to it, so the runtime ends the thread too.
func (ns Netns) Do(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+string(ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		done <- f()
	}()
	return <-done
}
