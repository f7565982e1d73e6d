package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// profiledPeers are observed with perf during extra 1-stream tests, after
// the measured rounds, so that the report can say where the CPU goes.
var profiledPeers = []string{nproxyName, "haproxy-nbthread1", "naive-go"}

// syscallEvents are counted with perf stat: label, then tracepoints summed.
var syscallEvents = [][]string{
	{"splice", "syscalls:sys_enter_splice"},
	{"read, recvfrom", "syscalls:sys_enter_read", "syscalls:sys_enter_recvfrom"},
	{"write, sendto", "syscalls:sys_enter_write", "syscalls:sys_enter_sendto"},
	{"epoll_wait", "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait"},
	{"epoll_ctl", "syscalls:sys_enter_epoll_ctl"},
	{"futex", "syscalls:sys_enter_futex"},
	{"all syscalls", "raw_syscalls:sys_enter"},
	{"context switches", "context-switches"},
}

// profileBulk adds to the report, for each profiled relay, the system calls
// per GB (perf stat) and the top of a flat profile (perf record). Without
// perf, or without the right to use it, it adds nothing.
func profileBulk(e *env, peers []*peer, servers map[string]*running) {
	if _, err := exec.LookPath("perf"); err != nil {
		return
	}
	var rows, tops strings.Builder
	for _, p := range peers {
		if !contains(profiledPeers, p.name) || !p.in(scBulk1) {
			continue
		}
		port := servers[p.name].listen
		if row, err := syscallRow(e, p, port); err != nil {
			logf("   perf stat %s: %v", p.name, err)
		} else {
			rows.WriteString(row)
		}
		if top, err := perfTop(e, p, port); err != nil {
			logf("   perf record %s: %v", p.name, err)
		} else {
			fmt.Fprintf(&tops, "<details><summary>%s</summary>\n\n```\n%s```\n\n</details>\n\n", p.name, top)
		}
	}
	var sb strings.Builder
	if rows.Len() > 0 {
		fmt.Fprintf(&sb, "System calls per GB relayed, thousands, in one more 1-stream test of each (`perf stat -e "+
			"<tracepoints> -p PID -- sleep %d`). Fewer calls per GB means bigger chunks per call:\n\n| peer |", e.cfg.bulkSecs+1)
		for _, ev := range syscallEvents {
			fmt.Fprintf(&sb, " %s |", ev[0])
		}
		sb.WriteString("\n|---|" + strings.Repeat("--:|", len(syscallEvents)) + "\n")
		sb.WriteString(rows.String() + "\n")
	}
	if tops.Len() > 0 {
		fmt.Fprintf(&sb, "Where the CPU goes in one more 1-stream test of each (`perf record -F 999 -p PID -- sleep %d`, "+
			"then `perf report --stdio --no-children --sort dso,symbol`; at most 15 entries above 1%%; "+
			"`[k]` is time in the kernel on the relay's behalf):\n\n%s", e.cfg.bulkSecs, tops.String())
	}
	if sb.Len() == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.profiles == nil {
		e.profiles = map[string]string{}
	}
	e.profiles[scBulk1] = sb.String()
}

// perfDuring runs one 1-stream test of p with perf attached to the relay.
func perfDuring(e *env, p *peer, port int, perfArgs ...string) (*iperfResult, error) {
	var rec *proc
	attach := func(r *running) func() {
		args := append(append([]string{}, perfArgs...), "-p", strconv.Itoa(r.pid()), "--", "sleep", strconv.Itoa(e.cfg.bulkSecs+1))
		rec, _ = start(e.logDir, nil, "perf", args...)
		return func() {
			if rec != nil {
				<-rec.done
			}
		}
	}
	res, _, err := bulkOnce(e, p, port, 1, attach)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("perf %s did not start", perfArgs[0])
	}
	if !rec.cmd.ProcessState.Success() {
		b, _ := os.ReadFile(rec.log)
		return nil, fmt.Errorf("perf %s: %v: %s", perfArgs[0], rec.cmd.ProcessState, lastLines(string(b), 2))
	}
	return res, nil
}

func syscallRow(e *env, p *peer, port int) (string, error) {
	out := filepath.Join(e.logDir, "perfstat-"+p.name+".csv")
	var evs []string
	for _, ev := range syscallEvents {
		evs = append(evs, ev[1:]...)
	}
	res, err := perfDuring(e, p, port, "stat", "-x,", "-o", out, "-e", strings.Join(evs, ","))
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	counts := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 2 {
			v, _ := strconv.ParseFloat(f[0], 64) // "<not counted>" is 0
			counts[f[2]] += v
		}
	}
	gb := res.End.SumReceived.Bytes / 1e9
	row := "| " + p.name + " |"
	for _, ev := range syscallEvents {
		var sum float64
		for _, name := range ev[1:] {
			sum += counts[name]
		}
		row += " " + num(sum/gb/1e3) + " |"
	}
	return row + "\n", nil
}

func perfTop(e *env, p *peer, port int) (string, error) {
	data := filepath.Join(e.logDir, "perf-"+p.name+".data")
	if _, err := perfDuring(e, p, port, "record", "-F", "999", "-o", data); err != nil {
		return "", err
	}
	out, err := exec.Command("perf", "report", "-i", data, "--stdio", "--no-children",
		"--sort", "dso,symbol", "--percent-limit", "1").Output()
	if err != nil {
		return "", err
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, strings.TrimRight(l, " -"))
		}
		if len(lines) == 15 {
			break
		}
	}
	return strings.Join(lines, "\n") + "\n", nil
}
