package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadClients opens 200 connections a second to port, each checking one
// echo, until stop is called; stop returns how many were opened and the
// failures.
func loadClients(port int) (stop func() (int64, []error)) {
	var done atomic.Bool
	var opened atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if done.Load() {
				return
			}
			wg.Go(func() {
				opened.Add(1)
				_, c, err := tagOf(port)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				c.Close()
			})
		}
	})
	return func() (int64, []error) {
		done.Store(true)
		wg.Wait()
		return opened.Load(), errs
	}
}

// TestUpgrade: SIGUSR2 under 200 connections a second starts a new nproxy
// on the same listening socket (LISTEN_FDS); once it is ready the old one
// drains and exits 0; no client is refused or reset, and the new process
// serves on.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	echo := taggedEcho(t, 'A')
	in := unusedPort(t, "127.0.0.1")
	// The log goes to a file, which the new process inherits: a pipe
	// to the test would be closed once the old process is waited for.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "nproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(nproxyBin, "-v", "--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", echo))
	cmd.Env = environWithoutProxy()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	logs := func() string { data, _ := os.ReadFile(logFile.Name()); return string(data) }
	mustEventually(t, 10*time.Second, "nproxy to listen", func() bool { return listeners(cmd.Process.Pid, in) > 0 })

	stop := loadClients(in)
	time.Sleep(time.Second) // load before the upgrade
	cmd.Process.Signal(syscall.SIGUSR2)
	ready := regexp.MustCompile(`upgrade: process (\d+) ready`)
	mustEventually(t, 10*time.Second, "the new process to be ready", func() bool { return ready.MatchString(logs()) })
	child, _ := strconv.Atoi(ready.FindStringSubmatch(logs())[1])
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGINT) })
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the old process: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the old process did not exit within 10 s of the upgrade")
	}
	time.Sleep(time.Second) // load after the upgrade, on the new process alone
	opened, errs := stop()
	for _, err := range errs {
		t.Errorf("client: %v", err)
	}
	t.Logf("%d connections, %d failed", opened, len(errs))
	if t.Failed() {
		t.Logf("log:\n%s", logs())
	}
	if listeners(child, in) == 0 {
		t.Errorf("the new process %d does not listen on %d", child, in)
	}
}
