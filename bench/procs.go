package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs is every process the harness started, so that they all die with it:
// a deferred killAll on return, and the signal handler on SIGINT/SIGTERM.
var procs struct {
	sync.Mutex
	cmds     map[int]*proc
	tempDir  string   // removed on a signal too
	cleanups []func() // run after the processes are killed, however the run ends
}

// onCleanup registers f (removing a network namespace) to run once the
// processes are killed, at the end of the run or on a signal. f must be
// safe to run more than once.
func onCleanup(f func()) {
	procs.Lock()
	procs.cleanups = append(procs.cleanups, f)
	procs.Unlock()
}

// cleanUp kills every process still registered, then runs the cleanups.
func cleanUp() {
	killAll()
	procs.Lock()
	fs := procs.cleanups
	procs.cleanups = nil
	procs.Unlock()
	for _, f := range fs {
		f()
	}
}

// proc is one started process; done closes once it has been reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start launches a command in its own process group (so that socat's forked
// children die with it) and with a parent-death signal (so that nothing
// survives a harness killed by SIGKILL).
func start(logDir string, env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	logName := filepath.Join(logDir, filepath.Base(name)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log")
	logf, err := os.Create(logName)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close() // the child holds its own copy
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logName}
	procs.Lock()
	if procs.cmds == nil {
		procs.cmds = map[int]*proc{}
	}
	procs.cmds[p.pid()] = p
	procs.Unlock()
	go func() { cmd.Wait(); close(p.done) }() // reap it whenever it exits
	return p, nil
}

// stop kills one started process group by its pid: SIGTERM, then SIGKILL
// if it is still there after a grace period.
func stop(p *proc) {
	if p == nil {
		return
	}
	pid := p.pid()
	procs.Lock()
	_, mine := procs.cmds[pid]
	delete(procs.cmds, pid)
	procs.Unlock()
	if !mine {
		return
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			syscall.Kill(-pid, syscall.SIGKILL) // forked children, if any
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
}

// killAll stops every process still registered.
func killAll() {
	procs.Lock()
	var cmds []*proc
	for _, c := range procs.cmds {
		cmds = append(cmds, c)
	}
	procs.Unlock()
	for _, c := range cmds {
		stop(c)
	}
}

// handleSignals makes SIGINT/SIGTERM/SIGHUP kill the children before exiting.
func handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-ch
		fmt.Fprintf(os.Stderr, "bench: caught %v, killing children\n", s)
		cleanUp()
		procs.Lock()
		if procs.tempDir != "" {
			os.RemoveAll(procs.tempDir)
		}
		procs.Unlock()
		os.Exit(130)
	}()
}

// statFields returns the fields of /proc/PID/stat after the command name,
// so that index 0 is the state (field 3 in proc(5)).
func statFields(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// tree returns pid and all its descendants (socat forks one child per
// connection; they count against its memory and fds).
func tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children(out[i])...)
	}
	return out
}

// children lists the direct children of pid, from every thread's list.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// usage is what /proc says about a process tree at one instant.
type usage struct {
	rssKiB int64   // sum of VmRSS
	fds    int     // sum of open fds
	cpu    float64 // seconds of user+system CPU, including reaped children
	procs  int
}

// measure reads /proc for the tree rooted at pid.
func measure(pid int) usage {
	var u usage
	for _, p := range tree(pid) {
		u.procs++
		u.rssKiB += statusKiB(p, "VmRSS:")
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p)); err == nil {
			u.fds += len(ents)
		}
	}
	u.cpu = cpuSeconds(pid)
	return u
}

// cpuSeconds is utime+stime+cutime+cstime of pid: the children's share
// appears once they are reaped, which socat does as each one exits.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := statFields(string(b))
	// utime is field 14 in proc(5), i.e. index 11 here; then stime, cutime, cstime.
	var ticks int64
	for i := 11; i <= 14 && i < len(f); i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return float64(ticks) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux that Go supports.
const clockTicks = 100

func statusKiB(pid int, key string) int64 {
	return statusValue(fmt.Sprintf("/proc/%d/status", pid), key)
}

func taskStatus(pid, tid int, key string) int64 {
	return statusValue(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid), key)
}

// statusValue reads the number after key in a /proc status file.
func statusValue(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			v, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return v
		}
	}
	return 0
}

// waitListen polls until something listens on port, without opening a
// connection (iperf3 -s logs an error for a connection that sends no cookie,
// and a relay would dial upstream).
func waitListen(port int, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if listening(port) {
			return nil
		}
		if p != nil && p.exited() {
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited: %v: %s", p.cmd.Path, p.cmd.ProcessState, lastLines(string(b), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d after %v", port, timeout)
}

// listening asks ss(8), whose filter runs in the kernel; /proc/net/tcp also
// lists every TIME_WAIT socket, and after the connection-rate scenario there
// are tens of thousands (about 0.1 s per read).
func listening(port int) bool {
	if out, err := exec.Command("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output(); err == nil {
		return len(strings.TrimSpace(string(out))) > 0
	}
	hex := fmt.Sprintf(":%04X ", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", hex) && f[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// nextPort starts at a block of its own per process: the machine may run
// several harnesses at once (a port found free by one can be taken by
// another before its relay binds it).
var nextPort = 20000 + os.Getpid()%50*200

// freePort returns a port below the ephemeral range (32768+), so that no
// client socket of the load generators can be holding it.
func freePort() int {
	for {
		p := nextPort
		nextPort++
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			return p
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// ctxSwitches sums voluntary and involuntary context switches over the
// threads of pid.
func ctxSwitches(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var sum int64
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		sum += taskStatus(pid, tid, "voluntary_ctxt_switches:") + taskStatus(pid, tid, "nonvoluntary_ctxt_switches:")
	}
	return sum
}
