package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profiledPeers are observed with perf during extra tests, after the
// measured rounds of a full run, so that the report can say where the CPU
// goes.
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

// workload is what a relay is observed under while perf watches it.
type workload struct {
	what   string                            // for the report: "1-stream test"
	per    string                            // the unit counts are given per: "GB relayed, thousands"
	scale  float64                           // counts are divided by the work times scale
	window time.Duration                     // how long perf watches
	target func(p *peer) int                 // the upstream port of p
	run    func(r *running) (float64, error) // runs the load through r; returns the work done
}

// bulkWorkload is one 1-stream iperf3 test, counted per GB.
func bulkWorkload(e *env, servers map[string]*running) workload {
	return workload{what: "1-stream test", per: "GB relayed, thousands", scale: 1e3,
		window: time.Duration(e.cfg.bulkSecs+1) * time.Second,
		target: func(p *peer) int { return servers[p.name].listen },
		run: func(r *running) (float64, error) {
			res, _, err := iperf(e, r, "-P", "1")
			if err != nil {
				return 0, err
			}
			return res.End.SumReceived.Bytes / 1e9, nil
		}}
}

// rateWorkload is one connection-rate window, counted per connection.
func rateWorkload(e *env, echo int) workload {
	d := max(e.cfg.rateDur, time.Second)
	return workload{what: "connection-rate window", per: "connection", scale: 1, window: d,
		target: func(*peer) int { return echo },
		run: func(r *running) (float64, error) {
			ok, fails, err := connLoop(r.listen, e.cfg.concurrency, d)
			if fails > 0 {
				return 0, fmt.Errorf("%d connections failed: %v", fails, err)
			}
			return float64(ok), nil
		}}
}

// profile adds to the report under table key, for each profiled relay of
// sc, the system calls per unit of work (perf stat) and where the CPU goes
// (perf record): kernel against user space, then the top symbols. Without
// perf, or without the right to use it, it adds nothing.
func profile(e *env, peers []*peer, sc, key string, w workload) {
	if _, err := exec.LookPath("perf"); err != nil {
		return
	}
	var rows, tops strings.Builder
	for _, p := range peers {
		if !contains(e.cfg.profiled, p.name) || !p.in(sc) {
			continue
		}
		if row, err := syscallRow(e, p, w); err != nil {
			logf("   perf stat %s: %v", p.name, err)
		} else {
			rows.WriteString(row)
		}
		if top, err := perfTop(e, p, key, w); err != nil {
			logf("   perf record %s: %v", p.name, err)
		} else {
			fmt.Fprintf(&tops, "<details><summary>%s</summary>\n\n```\n%s```\n\n</details>\n\n", p.name, top)
		}
	}
	var sb strings.Builder
	if rows.Len() > 0 {
		fmt.Fprintf(&sb, "System calls per %s, in one more %s of each (`perf stat -e <tracepoints> -p PID -- sleep %v`):\n\n| peer |",
			w.per, w.what, w.window.Seconds())
		for _, ev := range syscallEvents {
			fmt.Fprintf(&sb, " %s |", ev[0])
		}
		sb.WriteString("\n|---|" + strings.Repeat("--:|", len(syscallEvents)) + "\n")
		sb.WriteString(rows.String() + "\n")
	}
	if tops.Len() > 0 {
		fmt.Fprintf(&sb, "Where the CPU goes in one more %s of each (`perf record -F 999 -p PID -- sleep %v`, "+
			"then `perf report --stdio --no-children --sort dso` for the share of the kernel and of the relay's own code, "+
			"and `--sort dso,symbol` for at most 15 entries above 1%%; `[k]` is time in the kernel on the relay's behalf):\n\n%s",
			w.what, w.window.Seconds(), tops.String())
	}
	if sb.Len() == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.profiles == nil {
		e.profiles = map[string]string{}
	}
	e.profiles[key] = sb.String()
}

// perfDuring runs w once through a fresh p with perf attached to it, and
// returns the work done.
func perfDuring(e *env, p *peer, w workload, perfArgs ...string) (float64, error) {
	r, err := launch(e, p, w.target(p))
	if err != nil {
		return 0, fmt.Errorf("did not start: %w", err)
	}
	defer r.stop()
	secs := strconv.FormatFloat(w.window.Seconds(), 'f', -1, 64)
	args := append(append([]string{}, perfArgs...), "-p", strconv.Itoa(r.pid()), "--", "sleep", secs)
	rec, err := start(e.logDir, nil, "perf", args...)
	if err != nil {
		return 0, err
	}
	work, err := w.run(r)
	<-rec.done
	if err != nil {
		return 0, err
	}
	if !rec.cmd.ProcessState.Success() {
		b, _ := os.ReadFile(rec.log)
		return 0, fmt.Errorf("perf %s: %v: %s", perfArgs[0], rec.cmd.ProcessState, lastLines(string(b), 2))
	}
	if work <= 0 {
		return 0, fmt.Errorf("perf %s: no work done", perfArgs[0])
	}
	return work, nil
}

func syscallRow(e *env, p *peer, w workload) (string, error) {
	out := filepath.Join(e.logDir, "perfstat-"+p.name+".csv")
	var evs []string
	for _, ev := range syscallEvents {
		evs = append(evs, ev[1:]...)
	}
	work, err := perfDuring(e, p, w, "stat", "-x,", "-o", out, "-e", strings.Join(evs, ","))
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
	row := "| " + p.name + " |"
	for _, ev := range syscallEvents {
		var sum float64
		for _, name := range ev[1:] {
			sum += counts[name]
		}
		row += " " + num(sum/work/w.scale) + " |"
	}
	return row + "\n", nil
}

func perfTop(e *env, p *peer, key string, w workload) (string, error) {
	data := filepath.Join(e.logDir, "perf-"+p.name+".data")
	if _, err := perfDuring(e, p, w, "record", "-F", "999", "-o", data); err != nil {
		return "", err
	}
	var lines []string
	for _, sort := range []string{"dso", "dso,symbol"} {
		out, err := exec.Command("perf", "report", "-i", data, "--stdio", "--no-children",
			"--sort", sort, "--percent-limit", "1").Output()
		if err != nil {
			return "", err
		}
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			if sort == "dso" && strings.HasSuffix(strings.TrimSpace(l), "[kernel.kallsyms]") {
				e.noteKernelShare(key, p.name, l)
			}
			if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") && n < 15 {
				lines = append(lines, strings.TrimRight(l, " -"))
				n++
			}
		}
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n"), nil
}

// noteKernelShare keeps the kernel's percentage from a perf report line
// such as "    93.03%  [kernel.kallsyms]".
func (e *env) noteKernelShare(key, peer, line string) {
	pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(line)[0], "%"), 64)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kernelShare == nil {
		e.kernelShare = map[string]map[string]float64{}
	}
	if e.kernelShare[key] == nil {
		e.kernelShare[key] = map[string]float64{}
	}
	e.kernelShare[key][peer] = pct
}
