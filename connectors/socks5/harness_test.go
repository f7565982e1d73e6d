package socks5_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// httpServer serves "hello from HOST" on 127.0.0.1 and returns its port.
func httpServer(t *testing.T) int {
	t.Helper()
	ln := nproxytest.Listener(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// curl runs curl with args and returns its output and error.
func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := nproxytest.Command(t, "curl")
	out, err := exec.Command(bin, append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
	return string(out), err
}

// startPeer runs a peer program in a process group of its own (danted forks)
// until the test ends, and waits until it listens on port.
func startPeer(t *testing.T, port int, name string, args ...string) {
	t.Helper()
	bin := nproxytest.Command(t, name)
	out := &nproxytest.LogBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, out)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !nproxytest.Listening(port); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %d:\n%s", name, port, out)
		}
	}
}

// microsocks runs microsocks on a free port, with user:pass if user is set.
func microsocks(t *testing.T, user, pass string) int {
	port := nproxytest.FreePort(t)
	args := []string{"-i", "127.0.0.1", "-p", fmt.Sprint(port)}
	if user != "" {
		args = append(args, "-u", user, "-P", pass)
	}
	startPeer(t, port, "microsocks", args...)
	return port
}

// danted runs Dante's server on a free port, without authentication.
func danted(t *testing.T) int {
	port := nproxytest.FreePort(t)
	cfg := strings.Join([]string{
		"logoutput: stderr",
		fmt.Sprintf("internal: 127.0.0.1 port = %d", port),
		"external: 127.0.0.1",
		"socksmethod: none", "clientmethod: none",
		"user.privileged: root", "user.unprivileged: nobody",
		"client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
		"socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }", ""}, "\n")
	path := filepath.Join(t.TempDir(), "danted.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startPeer(t, port, "danted", "-f", path, "-N", "1")
	return port
}
