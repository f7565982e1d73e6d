package main

import (
	"os/exec"
	"strings"
)

// microCommand is the Go micro-benchmark suite of the hot paths: the relay
// (splice, buffers, a hook) and the buffer queue, with allocations per op.
// A fixed iteration count keeps it short and comparable between runs.
var microCommand = []string{"go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", "20000x", "./loop", "./buffer"}

// microBenchmarks runs microCommand in the repository and keeps its result
// lines, or the reason it failed.
func microBenchmarks(root string) string {
	cmd := exec.Command(microCommand[0], microCommand[1:]...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
			lines = append(lines, l)
		}
	}
	if err != nil {
		lines = append(lines, "failed: "+err.Error(), lastLines(string(out), 5))
	}
	return strings.Join(lines, "\n")
}

// writeMicro adds the micro-benchmarks' section.
func (r *report) writeMicro(w writer) {
	if r.micro == "" {
		return
	}
	w("## Go micro-benchmarks (hot paths, allocations)\n\n")
	w("`%s`. One op is one 16 KiB chunk relayed client → loop → server on loopback TCP "+
		"(BenchmarkRelaySplice, BenchmarkRelayCopy with splice off, BenchmarkRelayHook with an identity hook), "+
		"or one 4 KiB push and drain of a buffer.Queue. allocs/op counts the whole process: 0 means the relay "+
		"allocates nothing per chunk in steady state.\n\n", strings.Join(microCommand, " "))
	w("```\n%s\n```\n\n", r.micro)
}
