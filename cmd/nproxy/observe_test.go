package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// --metrics serves the counters of the relayed connections, and
// --log-format json writes one JSON object per line.
func TestMetricsAndJSONLog(t *testing.T) {
	t.Parallel()
	curl := nproxytest.Command(t, "curl")
	echo := goEcho(t, "127.0.0.1:0")
	in, mport := unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, echo, "-v", "--log-format", "json", "--metrics", addrOf("127.0.0.1", mport))
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("zlonk\n"), newRand(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var body string
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(body, `nproxy_connections_closed_total{proxy="1"} 1`); time.Sleep(20 * time.Millisecond) {
		out, err := exec.Command(curl, "-s", "-m", "5", "http://"+addrOf("127.0.0.1", mport)+"/metrics").Output()
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("curl /metrics: %v\n%s", err, body)
		}
		body = string(out)
	}
	if !strings.Contains(body, `nproxy_connections_opened_total{proxy="1"} 1`) || !strings.Contains(body, "nproxy_ready 1") {
		t.Errorf("/metrics:\n%s", body)
	}
	p.signal(t, syscall.SIGTERM)
	p.exitCode(t, 5*time.Second)
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	access := 0
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not JSON: %q", line)
		}
		if rec["msg"] == "access" {
			access++
		}
	}
	if access != 1 {
		t.Errorf("%d access records, want 1:\n%s", access, p.stderr.String())
	}
}

func TestBadObserveOptions(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--log-format", "xml"}, {"--metrics", "nohostport"}} {
		code, stderr := runNproxy(t, nil, append(args, "--in", tcpSpec("127.0.0.1", 1), "--out", tcpSpec("127.0.0.1", 2))...)
		if code != exitConfig || !strings.Contains(stderr, args[0][2:]) {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}

// --access-log and the access_log key: the file gets one line per
// connection, at the default verbosity, and nothing else; standard error
// gets none.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args func(path string, in, out int) []string
	}{
		{"option", func(path string, in, out int) []string {
			return []string{"--access-log", path, "--log-format", "json", "--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", out)}
		}},
		{"yaml", func(path string, in, out int) []string {
			return []string{"-c", yamlFile(t, fmt.Sprintf("access_log: %s\nproxies: [{in: {%s}, out: {%s}}]\n",
				path, yamlSpec(in), yamlSpec(out)))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "access.log")
			echo := goEcho(t, "127.0.0.1:0")
			in := unusedPort(t, "127.0.0.1")
			p := startChild(t, nproxyBin, tc.args(path, in, echo)...)
			waitListening(t, p, in)
			for i := 0; i < 2; i++ {
				c := dialClient(t, addrOf("127.0.0.1", in))
				if err := echoRoundTrip(c, []byte("zlonk\n"), newRand(t)); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			// The lines are written within 100 ms of the first; a SIGTERM
			// sent before both connections ended would end them "closed".
			mustEventually(t, 5*time.Second, "two access lines", func() bool {
				data, _ := os.ReadFile(path)
				return strings.Count(string(data), "\n") >= 2
			})
			p.signal(t, syscall.SIGTERM)
			if code := p.exitCode(t, 5*time.Second); code != 0 || strings.Contains(p.stderr.String(), "access") {
				t.Errorf("exit %d, stderr:\n%s", code, p.stderr.String())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2:\n%s", len(lines), data)
			}
			for _, line := range lines {
				checkAccessLine(t, tc.name == "option", line)
			}
		})
	}
}

// checkAccessLine checks an access line of a 6-byte echo to the proxy #1.
func checkAccessLine(t *testing.T, isJSON bool, line string) {
	t.Helper()
	if !isJSON {
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d access proxy=#1 client=127\.0\.0\.1:\d+ target=127\.0\.0\.1:\d+ in=6 out=6 duration=\S+ end=eof$`).MatchString(line) {
			t.Errorf("access line %q", line)
		}
		return
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("not JSON: %q", line)
	}
	if rec["msg"] != "access" || rec["proxy"] != "#1" || rec["in"] != 6.0 || rec["out"] != 6.0 || rec["end"] != "eof" {
		t.Errorf("access record %v", rec)
	}
}

// --access-log - writes the access lines to standard error, the only
// lines there at the default verbosity.
func TestAccessLogStderr(t *testing.T) {
	t.Parallel()
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, echo, "--access-log", "-")
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("zlonk\n"), newRand(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	mustEventually(t, 5*time.Second, "the access line", func() bool { return strings.Contains(p.stderr.String(), "\n") })
	p.signal(t, syscall.SIGTERM)
	p.exitCode(t, 5*time.Second)
	checkAccessLine(t, false, strings.TrimSuffix(p.stderr.String(), "\n"))
}

func yamlSpec(port int) string { return fmt.Sprintf("type: tcp, host: 127.0.0.1, port: %d", port) }

// An access log that cannot be opened stops nproxy before it listens, as
// any configuration error does.
func TestAccessLogBadPath(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "missing", "access.log")
	in := unusedPort(t, "127.0.0.1")
	proxy := fmt.Sprintf("proxies: [{in: {%s}, out: {%s}}]\n", yamlSpec(in), yamlSpec(1))
	for _, args := range [][]string{
		{"--access-log", bad, "--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", 1)},
		{"-c", yamlFile(t, "access_log: "+bad+"\n"+proxy)},
	} {
		code, stderr := runNproxy(t, nil, args...)
		if code != exitConfig || !strings.Contains(stderr, "access_log: open "+bad+": no such file or directory") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
