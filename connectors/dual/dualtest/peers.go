// Package dualtest starts the real servers that the dual connector's tests
// put behind a shared port: OpenSSH's sshd and openssl s_server, both on
// 127.0.0.1, both stopped when the test ends.
//
//	sshd := dualtest.StartSSHD(t)
//	out, err := sshd.Client(ctx, sshd.Addr, "echo", "hi").Output() // "hi\n"
//
//	tlsd := dualtest.StartTLSServer(t)                // echoes each line reversed
//	got := dualtest.TLSRoundTrip(t, tlsd.Addr, "abc") // "cba"
//
// A test that needs a binary that is not installed is skipped with a message
// naming it.
package dualtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// SSHDPath is where Debian's openssh-server installs the daemon; sshd
// re-executes itself, so it must be started by its absolute path.
const SSHDPath = "/usr/sbin/sshd"

// startTimeout bounds how long a server may take to start listening.
const startTimeout = 10 * time.Second

// SSHD is a running OpenSSH server that accepts the key in its directory.
type SSHD struct {
	Addr string // host:port it listens on
	dir  string
}

// StartSSHD starts sshd on a free port of 127.0.0.1 with a throw-away host
// key and one authorised client key, all in t.TempDir(). It must run as root,
// as sshd refuses to serve other users' logins otherwise.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	need(t, SSHDPath, "ssh-keygen", "ssh")
	if os.Geteuid() != 0 {
		nproxytest.Unavailable(t, "sshd needs root to log users in")
	}
	dir := t.TempDir()
	for _, k := range []string{"host_key", "client_key"} {
		run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k))
	}
	copyFile(t, filepath.Join(dir, "client_key.pub"), filepath.Join(dir, "authorized_keys"))
	// sshd checks for its privilege separation directory even when it never uses it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	var addr string
	for range 3 { // the free port may be taken again before sshd binds it
		port := nproxytest.FreePort(t)
		cfg := filepath.Join(dir, fmt.Sprintf("sshd_config.%d", port))
		writeFile(t, cfg, sshdConfig(dir, port))
		listening := func(l string) bool { return strings.Contains(l, "Server listening on 127.0.0.1") }
		ok, lines := startServer(t, exec.Command(SSHDPath, "-D", "-e", "-f", cfg), stderrOf, listening)
		if ok {
			addr = fmt.Sprintf("127.0.0.1:%d", port)
			break
		}
		t.Logf("sshd did not start on port %d: %s", port, lines)
	}
	if addr == "" {
		t.Fatal("sshd did not start")
	}
	return &SSHD{Addr: addr, dir: dir}
}

func sshdConfig(dir string, port int) string {
	return fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 100:30:200
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
}

// Client returns an ssh command that logs in as root to addr (which may be a
// proxy in front of the server) with the server's client key and runs args.
func (s *SSHD) Client(ctx context.Context, addr string, args ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(addr)
	return s.command(ctx, append([]string{"-p", port, "root@" + host}, args...))
}

// ClientVia is Client through an ssh ProxyCommand, a shell command whose
// standard input and output carry the connection.
func (s *SSHD) ClientVia(ctx context.Context, proxyCommand string, args ...string) *exec.Cmd {
	return s.command(ctx, append([]string{"-o", "ProxyCommand=" + proxyCommand, "root@127.0.0.1"}, args...))
}

func (s *SSHD) command(ctx context.Context, args []string) *exec.Cmd {
	base := []string{
		"-i", filepath.Join(s.dir, "client_key"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
	}
	return exec.CommandContext(ctx, "ssh", append(base, args...)...)
}

// TLSServer is a running openssl s_server that sends each line back reversed.
type TLSServer struct {
	Addr     string // host:port it listens on
	CertFile string // its certificate for localhost and 127.0.0.1 (ssltest's ServerCert), PEM
}

// StartTLSServer starts openssl s_server -rev on a free port of 127.0.0.1
// with a fresh certificate from ssltest.New; extra arguments go to s_server. It
// serves one connection at a time, as s_server does.
func StartTLSServer(t testing.TB, extra ...string) *TLSServer {
	t.Helper()
	need(t, "openssl")
	certs := ssltest.New(t)
	args := append([]string{"s_server", "-accept", "127.0.0.1:0", "-cert", certs.ServerCert, "-key", certs.ServerKey, "-rev", "-ign_eof"}, extra...)
	var addr string
	accepting := func(l string) bool {
		a, found := strings.CutPrefix(l, "ACCEPT ")
		if found {
			addr = a
		}
		return found
	}
	if ok, lines := startServer(t, exec.Command("openssl", args...), stdoutOf, accepting); !ok {
		t.Fatalf("openssl s_server did not start: %s", lines)
	}
	return &TLSServer{Addr: addr, CertFile: certs.ServerCert}
}

// TLSClient returns an openssl s_client command that connects to addr
// without certificate checks or SNI; extra arguments go to s_client.
func TLSClient(ctx context.Context, addr string, extra ...string) *exec.Cmd {
	args := append([]string{"s_client", "-connect", addr, "-quiet", "-noservername"}, extra...)
	return exec.CommandContext(ctx, "openssl", args...)
}

// TLSRoundTrip sends line through openssl s_client to addr and returns the
// first line that comes back (StartTLSServer's server reverses it). It
// fails t if no line comes back within ten seconds.
func TLSRoundTrip(t testing.TB, addr, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := TLSClient(ctx, addr)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := in.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("openssl s_client to %s: %v (got %q)", addr, err, got)
	}
	return strings.TrimSuffix(got, "\n")
}

// FreePort is nproxytest.FreePort, kept for the tests of cmd/nproxy.
//
// Deprecated: use nproxytest.FreePort.
func FreePort(t testing.TB) int { return nproxytest.FreePort(t) }

// need ends t (nproxytest.Unavailable) unless every program is installed.
func need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		nproxytest.Command(t, p)
	}
}

func stdoutOf(c *exec.Cmd) (io.ReadCloser, error) { return c.StdoutPipe() }
func stderrOf(c *exec.Cmd) (io.ReadCloser, error) { return c.StderrPipe() }

// startServer starts cmd, kills it when t ends, and keeps reading the
// output pipe chosen by out (so that a chatty server never blocks on it).
// It waits, bounded, for a line that satisfies ready, and gives up early if
// the server exits; it returns whether the line came and the output so far.
func startServer(t testing.TB, cmd *exec.Cmd, out func(*exec.Cmd) (io.ReadCloser, error), ready func(string) bool) (bool, string) {
	t.Helper()
	pipe, err := out(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var mu sync.Mutex
	var seen strings.Builder
	found, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		s := bufio.NewScanner(pipe)
		for s.Scan() {
			mu.Lock()
			seen.WriteString(s.Text() + "\n")
			mu.Unlock()
			if ready != nil && ready(s.Text()) {
				ready = nil
				close(found)
			}
		}
	}()
	var ok bool
	select {
	case <-found:
		ok = true
	case <-exited:
	case <-time.After(startTimeout):
	}
	mu.Lock()
	defer mu.Unlock()
	return ok, seen.String()
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}
