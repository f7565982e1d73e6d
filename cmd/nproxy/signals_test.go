package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopSignals are the signals that stop nproxy cleanly, by Net::Proxy's
// names: INT at once, TERM and USR1 after a drain (SIGHUP reloads).
var stopSignals = []struct {
	name string
	sig  syscall.Signal
}{{"INT", syscall.SIGINT}, {"TERM", syscall.SIGTERM}, {"USR1", syscall.SIGUSR1}}

// A signal while nproxy is still starting (here: reading its configuration
// from a FIFO the test holds) stops it cleanly, with status 0 and nothing
// listened, instead of killing it the default way.
func TestSignalDuringStartup(t *testing.T) {
	t.Parallel()
	for _, sig := range stopSignals {
		t.Run(sig.name, func(t *testing.T) {
			t.Parallel()
			fifo := filepath.Join(t.TempDir(), "nproxy.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			in, out := unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
			p := startChild(t, nproxyBin, "-v", "-c", fifo)
			// Opening the FIFO for writing succeeds once nproxy opened it
			// for reading: main has run, and nproxy waits for the file.
			var w *os.File
			mustEventually(t, 10*time.Second, "nproxy to open its configuration", func() bool {
				var err error
				w, err = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
				if err != nil && !errors.Is(err, syscall.ENXIO) {
					t.Fatal(err)
				}
				return err == nil
			})
			p.signal(t, sig.sig)
			mustEventually(t, 5*time.Second, "the signal to be delivered", func() bool {
				return !signalPending(t, p.pid(), sig.sig)
			})
			w.WriteString(tcpProxyYAML(in, out))
			w.Close()
			if code := p.exitCode(t, 10*time.Second); code != 0 {
				t.Errorf("exit status %d (%v) after SIG%s during start-up, want 0", code, p.cmd.ProcessState, sig.name)
			}
			if want := "Caught " + sig.name + " signal"; !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, p.stderr.String())
			}
		})
	}
}

func tcpProxyYAML(in, out int) string {
	return fmt.Sprintf("proxies: [{in: {type: tcp, host: 127.0.0.1, port: %d}, out: {type: tcp, host: 127.0.0.1, port: %d}}]\n", in, out)
}

// signalPending says whether sig waits to be delivered to pid: the kernel
// lists the signals sent to the process and not yet taken by a thread in
// ShdPnd.
func signalPending(t *testing.T, pid int, sig syscall.Signal) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if mask, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return bits&(1<<(sig-1)) != 0
		}
	}
	t.Fatal("no ShdPnd in /proc/pid/status")
	return false
}
