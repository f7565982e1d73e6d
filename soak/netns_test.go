//go:build soak

package soak

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsPrefix names the suite's network namespaces: npsoak-<pid>-<role>.
const netnsPrefix = "npsoak-"

// netns is a network namespace the suite created with ip netns.
type netns string

// newNetns creates a namespace with its loopback up, deleted when the test
// ends (and by the next run if this one was killed first).
func newNetns(t *testing.T, role string) netns {
	t.Helper()
	removeStaleNetns()
	ns := netns(fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), role))
	ip(t, "netns", "add", string(ns))
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", string(ns)).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

// removeStaleNetns deletes the namespaces of suite runs that died without
// cleaning up (a test binary killed by its timeout runs no cleanup).
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

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ip runs ip -n ns args.
func (ns netns) ip(t *testing.T, args ...string) {
	t.Helper()
	ip(t, append([]string{"-n", string(ns)}, args...)...)
}

// do runs f on a thread that entered ns: sockets f creates belong to ns
// and keep working from any thread. The thread is not reused: the
// goroutine ends locked to it, so the runtime ends the thread too.
func (ns netns) do(f func() error) error {
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

// openTUN creates TUN device name in ns (IP packets, no packet
// information header), and returns it as a non-blocking file, so that
// Close interrupts a Read.
func (ns netns) openTUN(t *testing.T, name string) *os.File {
	t.Helper()
	var f *os.File
	err := ns.do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	if err != nil {
		t.Fatalf("TUN device in %s: %v", ns, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitListeningIn waits (10 s at most) until a TCP socket listens on port
// in the network namespace of pid, read from /proc/<pid>/net/tcp.
func waitListeningIn(t *testing.T, p *proc, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X", port)
	p.waitFor(t, fmt.Sprintf("port %d to listen in its namespace", port), func() bool {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", p.cmd.Process.Pid))
		if err != nil {
			return false
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" { // 0A: LISTEN
				return true
			}
		}
		return false
	})
}
