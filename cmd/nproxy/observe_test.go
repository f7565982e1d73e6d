package main

import (
	"encoding/json"
	"os/exec"
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
