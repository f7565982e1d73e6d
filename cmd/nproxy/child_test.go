package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// child is a process started by a test. When the test ends it is killed
// with its process group (socat forks a child per connection); an nproxy
// started by startNproxy must first stop by itself on SIGINT (SIGTERM
// drains, and may wait for the test's connections).
type child struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr nproxytest.LogBuffer // what it writes, read while it runs
	done           chan struct{}        // closed once the process has exited
	graceful       bool                 // SIGINT must stop it within 5 s
}

// startChild runs name with args until the test ends.
func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	return startCmd(t, exec.Command(name, args...), false)
}

// startNproxy runs the nproxy binary with args, in the test's environment
// without HTTP_PROXY plus env, and waits until it listens on every port of
// listen. When the test ends, SIGINT must stop it within 5 s.
func startNproxy(t *testing.T, env []string, listen []int, args ...string) *child {
	t.Helper()
	cmd := exec.Command(nproxyBin, args...)
	cmd.Env = append(environWithoutProxy(), env...)
	p := startCmd(t, cmd, true)
	for _, port := range listen {
		waitListening(t, p, port)
	}
	return p
}

// runNproxy runs the nproxy binary as startNproxy does, to completion (10 s
// at most), and returns its exit status and standard error.
func runNproxy(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	p := startNproxy(t, env, nil, args...)
	return p.exitCode(t, 10*time.Second), p.stderr.String()
}

// environWithoutProxy is the test's environment without HTTP_PROXY, and
// with the race detector's one-second pause at exit turned off.
func environWithoutProxy() []string {
	env := []string{"GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.ToLower(k) != "http_proxy" && k != "GORACE" {
			env = append(env, kv)
		}
	}
	return env
}

func startCmd(t testing.TB, cmd *exec.Cmd, graceful bool) *child {
	t.Helper()
	p := &child{name: filepath.Base(cmd.Path), cmd: cmd, done: make(chan struct{}), graceful: graceful}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *child) stop(t testing.TB) {
	if p.graceful && !p.exited() {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s ignored SIGINT for 5 s", p.name)
		}
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s (pid %d) still running 5 s after SIGKILL", p.name, p.pid())
	}
	// The binary is built with -race: a report fails the test even if
	// the process survived it.
	if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("the race detector reported a data race in %s", p.name)
	}
	if t.Failed() {
		t.Logf("%s %q stderr:\n%s", p.name, p.cmd.Args[1:], p.stderr.String())
	}
}

func (p *child) pid() int { return p.cmd.Process.Pid }

func (p *child) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode waits at most d for the process to end and returns its status.
func (p *child) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s still running after %v", p.name, d)
		return -1
	}
}

func (p *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling %s: %v", p.name, err)
	}
}

// waitListening waits until p listens on port, failing early if p exits.
func waitListening(t *testing.T, p *child, port int) {
	t.Helper()
	mustEventually(t, 10*time.Second, fmt.Sprintf("%s to listen on port %d", p.name, port), func() bool {
		if p.exited() {
			t.Fatalf("%s exited with %v before listening on port %d:\n%s", p.name, p.cmd.ProcessState, port, p.stderr.String())
		}
		return listeners(p.pid(), port) > 0
	})
}

// waitStderr waits up to 5 s for p to log want.
func waitStderr(t *testing.T, p *child, want string) {
	t.Helper()
	if !eventually(5*time.Second, func() bool { return strings.Contains(p.stderr.String(), want) }) {
		t.Fatalf("%s's stderr lacks %q:\n%s", p.name, want, p.stderr.String())
	}
}
