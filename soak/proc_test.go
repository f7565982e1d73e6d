//go:build soak

package soak

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// proc is a program the suite started: nproxy or a peer. It runs in a
// process group of its own, killed with the group when the test ends.
type proc struct {
	name     string
	graceful bool // SIGTERM must stop it within 5 s (nproxy)
	cmd      *exec.Cmd
	stderr   nproxytest.LogBuffer
	done     chan struct{}
}

// memoryLimit is in the environment of every process the soak starts, for
// nproxy's Go runtime (the other peers ignore it). Without it, what stays
// resident after a cycle is the collector's and the scavenger's timing
// more than the relay's: for the same TLS load, 86 to 147 MiB at the end
// of a cycle, so that a cycle that happened to peak low made the next one
// look like growth. Over a soft limit the runtime collects and returns
// freed memory at once: the ends of the same cycles measured 44 to 54 MiB,
// and a leak stands out of that by what it keeps.
const memoryLimit = "GOMEMLIMIT=48MiB"

// start runs name with args until the test ends. An nproxy gets SIGTERM
// first and must stop within 5 s.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stderr, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Env = append(os.Environ(), memoryLimit)
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// startNproxy runs the nproxy command with args and waits until it listens
// on every port of 127.0.0.1 given.
func startNproxy(t testing.TB, ports []int, args ...string) *proc {
	t.Helper()
	return startNproxyVia(t, ports, nil, args...)
}

// startNproxyVia is startNproxy through a wrapper that execs it (prlimit,
// ip netns exec): wrapper's words come first, nproxy keeps their pid.
func startNproxyVia(t testing.TB, ports []int, wrapper []string, args ...string) *proc {
	t.Helper()
	argv := append(append(wrapper, nproxyBin), args...)
	p := start(t, argv[0], argv[1:]...)
	p.graceful = true
	for _, port := range ports {
		p.waitFor(t, fmt.Sprintf("port %d to listen", port), func() bool { return nproxytest.Listening(port) })
	}
	return p
}

func (p *proc) stop(t testing.TB) {
	if p.graceful && !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s ignored SIGTERM for 5 s", p.name)
		}
	}
	p.kill(t)
	if t.Failed() {
		t.Logf("%s's output (last 4 KiB):\n%s", p.name, tail(p.stderr.String(), 4096))
	}
}

// kill kills the process's group and waits (5 s at most) for it to end.
func (p *proc) kill(t testing.TB) {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s (pid %d) still running 5 s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond for 10 s at most, failing t if p exits first.
func (p *proc) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before %s:\n%s", p.name, p.cmd.ProcessState, what, tail(p.stderr.String(), 4096))
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10 s waiting for %s", what)
		}
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// usage is what a process holds: the figures that must not grow.
type usage struct {
	fds, threads int
	epolls       int // fds that are epoll instances
	rssKiB       int64
	peakKiB      int64 // VmHWM: the most it was ever resident
}

func (u usage) String() string {
	return fmt.Sprintf("%d fds, %d threads, RSS %.1f MiB", u.fds, u.threads, float64(u.rssKiB)/1024)
}

// usageOf reads pid's open files, threads and resident memory from /proc.
func usageOf(pid int) (usage, error) {
	var u usage
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return u, err
	}
	u.fds = len(fds)
	for _, fd := range fds {
		if link, _ := os.Readlink(dir + "/" + fd.Name()); link == "anon_inode:[eventpoll]" {
			u.epolls++
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, value, _ := strings.Cut(line, ":")
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		switch key {
		case "Threads":
			u.threads, _ = strconv.Atoi(fields[0])
		case "VmRSS":
			u.rssKiB, _ = strconv.ParseInt(fields[0], 10, 64)
		case "VmHWM":
			u.peakKiB, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return u, nil
}

func (p *proc) usage(t testing.TB) usage {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited (%v):\n%s", p.name, p.cmd.ProcessState, tail(p.stderr.String(), 4096))
	}
	u, err := usageOf(p.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return u
}

// cycles runs f twice with fresh seeds and returns p's usage after the
// first, for checkUsage after the second.
func cycles(t *testing.T, p *proc, idle usage, f func(seed uint64)) (warm usage) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	f(seed)
	warm = p.settled(t, idle)
	f(seed + 1)
	return warm
}

// settled waits until p holds no more fds than at idle, but for the Go
// runtime's poller (see checkFDs): pooled pipes are released after a
// second without traffic, closing connections need a moment. It returns
// p's usage then; after 10 s, what p holds.
func (p *proc) settled(t testing.TB, idle usage) usage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := p.usage(t)
		if u.fds <= idle.fds+2*min(1, u.epolls-idle.epolls) || time.Now().After(deadline) {
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rssBound is the most resident memory allowed at the end of a case whose
// first cycle left warm: 25% (at least 8 MiB) over what was resident at
// that cycle's end, as both ran the same load up to the same concurrency.
// The ends compare because of memoryLimit: without it they swung by 60 MiB
// for the same TLS load, and a bound over the first cycle's peak (VmHWM),
// loose enough for that, let a leak of 16 KiB per connection through (end
// of cycle 1 55 MiB, of cycle 2 83 MiB, both under that peak's bound), which
// this bound catches. Smaller leaks are the churn case's, which counts the
// heap in process.
func rssBound(warm usage) int64 {
	return warm.rssKiB + max(8<<10, warm.rssKiB/4)
}

// checkUsage compares p's settled usage with idle (before any connection)
// and warm (after the first of two alike cycles), adds the figure to r and
// fails t on growth: fds must come back to idle exactly, threads stay
// within the first cycle's plus 2 (the Go runtime may start a thread for a blocking
// syscall, and never ends one), RSS within rssBound.
func checkUsage(t *testing.T, r *row, p *proc, idle, warm usage) {
	t.Helper()
	end := p.settled(t, idle)
	r.add(t, "nproxy idle %v; after cycle 1 %v; after cycle 2 %v", idle, warm, end)
	checkFDs(t, p, idle, end)
	if end.threads > warm.threads+2 {
		t.Errorf("nproxy has %d threads at the end, %d after cycle 1", end.threads, warm.threads)
	}
	if end.rssKiB > rssBound(warm) {
		t.Errorf("nproxy's RSS grew to %d KiB, more than %d KiB (cycle 1: %d KiB, peak %d KiB)", end.rssKiB, rssBound(warm), warm.rssKiB, warm.peakKiB)
	}
}

// checkFDs fails t unless end holds the fds idle held, listing what p
// holds when it does not. One more epoll instance and its eventfd are not
// counted: the Go runtime makes its own poller the first time it needs
// one, a timer included (its background scavenger's, once the heap has
// shrunk), and keeps it; nproxy's loops have theirs from the start. Growth
// beyond that one pair is not allowed.
func checkFDs(t *testing.T, p *proc, idle, end usage) {
	t.Helper()
	if runtimePoller := min(1, end.epolls-idle.epolls); end.fds-2*runtimePoller != idle.fds {
		t.Errorf("nproxy holds %d fds at the end, %d at idle: %s", end.fds, idle.fds, openFiles(p.cmd.Process.Pid))
	}
}

// openFiles lists what pid's fds point to, for a report.
func openFiles(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	var links []string
	for _, e := range entries {
		link, _ := os.Readlink(dir + "/" + e.Name())
		links = append(links, e.Name()+"→"+link)
	}
	return strings.Join(links, " ")
}

// raiseFileLimit lifts the suite's own soft fd limit to the hard one: the
// clients and echo servers of 1000 connections hold 2000 fds.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
