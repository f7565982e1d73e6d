//go:build soak

package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// nproxyBin is the command built from ./cmd/nproxy by TestMain, without the
// race detector: the suite measures its memory and throughput as users run it.
var nproxyBin string

// soakTime is the whole suite's budget, from $SOAK (10 minutes by default);
// each case takes a share of it.
var soakTime = 10 * time.Minute

func TestMain(m *testing.M) {
	if s := os.Getenv("SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "SOAK=%q: want a positive duration such as 60s or 10m\n", s)
			os.Exit(2)
		}
		soakTime = d
	}
	dir, err := os.MkdirTemp("", "nproxy-soak")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nproxyBin = filepath.Join(dir, "nproxy")
	build := exec.Command("go", "build", "-o", nproxyBin, "../cmd/nproxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nproxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	raiseFileLimit()
	start := time.Now()
	code := m.Run()
	printTable(os.Stdout, soakTime, time.Since(start))
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestSoak runs every case in turn: one at a time, so that each one's
// resource figures are its own.
func TestSoak(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := begin(t, c.name)
			c.run(t, row, budget(c.share))
		})
	}
}

// soakCase is one row of the table: run gets the row to fill and its share
// of soakTime.
type soakCase struct {
	name  string
	share float64
	run   func(t *testing.T, row *row, d time.Duration)
}

// cases in the order the table shows them; the shares add up to about 1,
// the rest of the time goes to starting and settling.
var cases = []soakCase{
	{"tcp splice", 0.08, relayTCP},
	{"tcp --no-splice", 0.08, relayNoSplice},
	{"ssl in", 0.08, relaySSL},
	{"connect via tinyproxy", 0.07, relayConnect},
	{"dual", 0.07, relayDual},
	{"fault: resets by clients and server", 0.06, faultResets},
	{"fault: backend killed and restarted", 0.06, faultBackendRestart},
	{"fault: prlimit --nofile at the limit", 0.05, faultFileLimit},
	{"fault: slowloris on dual+TLS+CONNECT", 0.03, faultSlowloris},
	{"fault: web proxy stops answering", 0.05, faultProxyStops},
	{"churn", 0, churn}, // runs churnCount connections, however long they take
	{"WAN: netem between client and nproxy", 0.2, wanCase},
}

// budget is share of soakTime, at least 5 s so that a short run still
// reaches each case's top concurrency.
func budget(share float64) time.Duration {
	return max(5*time.Second, time.Duration(float64(soakTime)*share))
}
