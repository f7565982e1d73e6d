package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/dual/dualtest"
	"github.com/nproxy/nproxy/nproxytest"
	"golang.org/x/sys/unix"
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

// openPty returns a pseudo-terminal's master and its slave, in raw mode
// (no echo, no line editing), so that bytes cross it unchanged.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		nproxytest.Unavailable(t, "no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// cfmakeraw
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// stdio on a terminal (read and written, not spliced): bytes typed come
// back from exec cat, and the terminal's hang-up ends nproxy; the terminal
// gets its file flags back (no O_NONBLOCK left behind for the shell).
func TestStdioTerminal(t *testing.T) {
	master, slave := openPty(t)
	cmd := exec.Command(nproxyBin, "--in", "type=stdio", "--out", "type=exec,argv=cat")
	cmd.Env = environWithoutProxy()
	cmd.Stdin, cmd.Stdout = slave, slave
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	master.SetDeadline(time.Now().Add(10 * time.Second))
	for _, line := range []string{"hello\n", "through a terminal\n"} {
		if _, err := master.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(line))
		if _, err := io.ReadFull(master, got); err != nil || string(got) != line {
			t.Fatalf("got %q (%v), want %q\n%s", got, err, line, stderr.String())
		}
	}
	master.Close() // the terminal hangs up
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("nproxy did not exit after the terminal hung up\n%s", stderr.String())
	}
	// Not slave.Fd(): it would make the file blocking itself.
	var flags int
	rc, _ := slave.SyscallConn()
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK != 0 {
		t.Error("the terminal was left non-blocking")
	}
}
