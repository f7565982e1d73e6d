package exec

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// proxyTo starts Mainloop with a tcp in on a free port relayed to out, and
// returns the port and the log (at notice level).
func proxyTo(t *testing.T, out *Out) (int, *nproxytest.LogBuffer, *nproxy.Proxy) {
	t.Helper()
	logs := nproxytest.CaptureLog(t, 1)
	port := nproxytest.FreePort(t)
	p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out)
	nproxytest.Start(t, 0, p)
	return port, logs, p
}

// exchange sends data, half-closes, and returns everything read until EOF.
func exchange(t *testing.T, c *net.TCPConn, data []byte) []byte {
	t.Helper()
	go func() { c.Write(data); c.CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading: %v (after %d bytes)", err, len(got))
	}
	return got
}

// cat relays byte-exact both ways, by splice between the client and the
// socketpair, and the client's EOF reaches cat as EOF on its stdin.
func TestCat(t *testing.T) {
	port, _, _ := proxyTo(t, &Out{Argv: []string{"cat"}})
	data := make([]byte, 4<<20)
	rand.Read(data)
	spliced := nproxy.SplicedBytes()
	if got := exchange(t, nproxytest.Dial(t, port), data); !bytes.Equal(got, data) {
		t.Fatalf("%d bytes back of %d", len(got), len(data))
	}
	if n := nproxy.SplicedBytes() - spliced; n < 2*uint64(len(data)-len(data)/8) { // the reads before a stream shows are copied
		t.Errorf("%d bytes spliced, want %d", n, 2*len(data))
	}
}

// A command that speaks first, with env and dir.
func TestBannerEnvDir(t *testing.T) {
	dir := t.TempDir()
	port, _, _ := proxyTo(t, &Out{Command: `echo "hello $WHO from $(pwd)"; exec cat`, Env: map[string]any{"WHO": "zlonk"}, Dir: dir})
	c := nproxytest.Dial(t, port)
	line, err := bufio.NewReader(c).ReadString('\n')
	if want := "hello zlonk from " + dir + "\n"; err != nil || line != want {
		t.Fatalf("banner %q (%v), want %q", line, err, want)
	}
}

// A child that exits early ends the connection once its output is
// delivered, although the client keeps its side open.
func TestExitsEarly(t *testing.T) {
	port, _, p := proxyTo(t, &Out{Command: "echo bye"})
	c := nproxytest.Dial(t, port)
	got, err := io.ReadAll(c) // the client never half-closes
	if err != nil || string(got) != "bye\n" {
		t.Fatalf("got %q (%v), want bye and EOF", got, err)
	}
	waitFor(t, "the connection to close", func() bool { return p.Closed() == 1 })
}

// A child that outlives its client is sent SIGTERM; one that ignores it is
// killed after kill_timeout; both are reaped. The client goes away with a
// reset: a FIN alone is a half-close, after which the child's output is
// still wanted.
func TestKilledWhenClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		killed        bool
	}{
		{"terminated", "echo $$; exec sleep 1000", false},
		{"ignores SIGTERM", "trap '' TERM; echo $$; exec sleep 1000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, logs, _ := proxyTo(t, &Out{Command: tc.command, KillTimeout: 300 * time.Millisecond})
			c := nproxytest.Dial(t, port)
			line, err := bufio.NewReader(c).ReadString('\n')
			pid, _ := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || pid == 0 {
				t.Fatalf("no pid from the child: %q %v", line, err)
			}
			c.SetLinger(0)
			c.Close()
			waitFor(t, fmt.Sprintf("child %d to be reaped", pid), func() bool { return !exists(pid) })
			if killed := strings.Contains(logs.String(), "ignored SIGTERM"); killed != tc.killed {
				t.Errorf("killed with SIGKILL: %v, want %v\n%s", killed, tc.killed, logs)
			}
		})
	}
}

// exists reports whether pid is a process, a zombie included.
func exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// A command that cannot start fails its connection only.
func TestCommandNotFound(t *testing.T) {
	port, logs, _ := proxyTo(t, &Out{Argv: []string{"/nonexistent/program"}})
	for range 2 {
		nproxytest.DialClosed(t, port, nil, 5*time.Second)
	}
	logs.WaitFor(t, `can't run ["/nonexistent/program"]`)
}

// Standard error is logged line by line with the connection's name, lines
// cut at 4 KiB; a child that writes endlessly is rate-limited.
func TestStderr(t *testing.T) {
	port, logs, _ := proxyTo(t, &Out{Command: `echo one >&2; echo two >&2; head -c 10000 /dev/zero | tr '\0' x >&2; echo >&2; echo done`})
	c := nproxytest.Dial(t, port)
	if got := exchange(t, c, nil); string(got) != "done\n" {
		t.Fatalf("stdout %q", got)
	}
	nick := c.LocalAddr().String()
	logs.WaitFor(t, nick+": stderr: one\n", nick+": stderr: two\n", strings.Repeat("x", 4096)+" [cut at 4096 bytes]\n")
	if strings.Contains(logs.String(), strings.Repeat("x", 4097)) {
		t.Error("a line longer than 4096 bytes was logged")
	}
}

// A child that writes endlessly to standard error is rate-limited.
func TestStderrFlood(t *testing.T) {
	port, logs, _ := proxyTo(t, &Out{Command: `yes spam >&2`, KillTimeout: time.Second})
	c := nproxytest.Dial(t, port)
	time.Sleep(500 * time.Millisecond) // let it write a few hundred thousand lines
	c.SetLinger(0)
	c.Close() // with a reset: the client is gone, not half-closed
	logs.WaitFor(t, "lines not logged")
	if n := strings.Count(logs.String(), "stderr: spam"); n > lineBurst+lineRate*3 {
		t.Errorf("%d lines logged in about 0.5 s, more than the rate limit allows", n)
	}
}

// Parameters: exactly one of command and argv; env a map; argv a list.
func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"type": "exec"}, "exactly one of command and argv"},
		{map[string]any{"type": "exec", "command": "cat", "argv": "cat"}, "exactly one of command and argv"},
		{map[string]any{"type": "exec", "argv": []any{"tr", "a-z", "A-Z"}, "env": map[string]any{"A": "b"}, "kill_timeout": "0.5"}, ""},
	} {
		_, err := connectors.Build(connectors.SideOut, "out", tc.params)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.params, err, tc.want)
		}
	}
	if _, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "exec", "command": "cat"}); err == nil {
		t.Error("exec built as an in connector")
	}
}

// fds and child processes are the same before and after 1,000 connections
// (the fds counted before the first one, when splice's pipe pool is empty,
// as it is again a second after the last).
func TestNoLeaks(t *testing.T) {
	port, _, p := proxyTo(t, &Out{Command: "exec cat"})
	waitFor(t, "every child to be reaped", func() bool {
		for _, pid := range children(t) {
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			stat, _ := os.ReadFile("/proc/" + pid + "/stat")
			t.Logf("child %s: %q %s", pid, cmd, stat)
		}
		return countChildren(t) == 0
	})
	fds := nproxytest.OpenFDs(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 125 {
				msg := []byte(fmt.Sprintf("worker %d message %d", w, i))
				c := nproxytest.Dial(t, port)
				got := exchange(t, c, msg)
				c.Close()
				if !bytes.Equal(got, msg) {
					t.Errorf("got %q, want %q", got, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "1,000 connections to close", func() bool { return p.Closed() == 1000 })
	waitFor(t, "the fd and child counts to return", func() bool {
		f, k := nproxytest.OpenFDs(t), countChildren(t)
		if f != fds {
			kinds := map[string]int{}
			entries, _ := os.ReadDir("/proc/self/fd")
			for _, e := range entries {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				kinds[strings.SplitN(l, ":", 2)[0]]++
			}
			t.Logf("fds %d (were %d), children %d: %v", f, fds, k, kinds)
		}
		return f == fds && k == 0
	})
}

// countChildren counts the test process's children, zombies included.
func countChildren(t *testing.T) int {
	return len(children(t))
}

func children(t *testing.T) []string {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		pids = append(pids, strings.Fields(string(b))...)
	}
	return pids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
