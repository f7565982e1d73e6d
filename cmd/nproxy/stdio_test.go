package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/dual/dualtest"
	"github.com/nproxy/nproxy/nproxytest"
)

// runStdio runs nproxy with stdin as its standard input and returns its
// exit status, standard output and standard error.
func runStdio(t *testing.T, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nproxyBin, args...)
	cmd.Env = environWithoutProxy()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("nproxy %q did not exit: %s", args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.Bytes(), stderr.String()
}

// A real OpenSSH client through ProxyCommand with type=stdio, straight to
// sshd, and through tinyproxy with type=connect (%h and %p as ssh gives
// them): ssh runs its command and exits 0, and so does nproxy.
func TestStdioProxyCommandSSH(t *testing.T) {
	sshd := dualtest.StartSSHD(t)
	host, port, _ := net.SplitHostPort(sshd.Addr)
	var sshdPort int
	fmt.Sscan(port, &sshdPort)
	tp := ct.StartTinyproxy(t, false, sshdPort)
	for name, out := range map[string]string{
		"tcp":     fmt.Sprintf("type=tcp,host=%s,port=%s", host, port),
		"connect": fmt.Sprintf("type=connect,host=%%h,port=%%p,proxy_host=%s,proxy_port=%d", tp.Host, tp.Port),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, args := range [][]string{{"true"}, {"echo", "zlonk"}} {
				cmd := sshd.ClientVia(ctx, fmt.Sprintf("%s -v --in type=stdio --out %s", nproxyBin, out), args...)
				cmd.Args = append([]string{cmd.Args[0], "-o", "Port=" + port}, cmd.Args[1:]...)
				cmd.Env = environWithoutProxy()
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("ssh %q: %v\n%s", args, err, stderr.String())
				}
				if want := strings.Join(args[1:], " "); strings.TrimSpace(stdout.String()) != want {
					t.Fatalf("ssh %q printed %q, want %q", args, stdout.String(), want)
				}
			}
			request := "CONNECT 127.0.0.1:" + port
			if log, _ := os.ReadFile(tp.Log); name == "connect" && !strings.Contains(string(log), request) {
				t.Errorf("tinyproxy did not log %q:\n%s", request, log)
			}
		})
	}
}

// stdio to exec cat: standard input comes back on standard output,
// byte-exact, and nproxy exits 0 once both directions are over; with -vvv,
// its log is on standard error only.
func TestStdioExecCat(t *testing.T) {
	data := make([]byte, 2<<20)
	rand.Read(data)
	code, stdout, stderr := runStdio(t, data, "-vvv", "--in", "type=stdio", "--out", "type=exec,argv=cat")
	if code != 0 || !bytes.Equal(stdout, data) {
		t.Fatalf("exit %d, %d bytes out of %d\n%s", code, len(stdout), len(data), stderr)
	}
	if !strings.Contains(stderr, "connection from stdio") {
		t.Errorf("no log on standard error: %q", stderr)
	}
}

// The same from YAML: argv as a list, env as a map.
func TestStdioExecYAML(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nproxy.yaml")
	os.WriteFile(cfg, []byte(`proxies:
  - in: {type: stdio}
    out: {type: exec, argv: [sh, -c, 'printf "$GREETING "; tr a-z A-Z'], env: {GREETING: hello}, kill_timeout: 1}
`), 0o600)
	code, stdout, stderr := runStdio(t, []byte("zowie"), "-c", cfg)
	if code != 0 || string(stdout) != "hello ZOWIE" {
		t.Fatalf("exit %d, stdout %q\n%s", code, stdout, stderr)
	}
}

// When the out side fails, nproxy exits 1 with one error line on standard
// error, and nothing on standard output.
func TestStdioOutFails(t *testing.T) {
	port := nproxytest.FreePort(t)
	code, stdout, stderr := runStdio(t, []byte("x"), "--in", "type=stdio", "--out", fmt.Sprintf("type=tcp,host=127.0.0.1,port=%d", port))
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(stdout) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "connection refused") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runStdio(t, nil, "--in", "type=stdio", "--out", "type=exec,argv=/nonexistent/program")
	if code != 1 || !strings.Contains(stderr, "can't run") {
		t.Fatalf("a command that does not exist: exit %d, %q", code, stderr)
	}
}

// A unix socket a server listens on is refused with status 2, and left
// alone; so is a regular file.
func TestUnixInUse(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("data"), 0o600)
	for path, want := range map[string]string{
		live:    "a server is listening on it: not removing it",
		regular: "the path exists and is not a socket: not removing it",
	} {
		code, stderr := runNproxy(t, nil, "--in", "type=unix,path="+path, "--out", "type=unix,path=/x")
		if code != exitConfig || !strings.Contains(stderr, "can't listen on unix socket "+path+": "+want) {
			t.Errorf("%s: exit %d, %q", path, code, stderr)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s was removed", path)
		}
	}
}
