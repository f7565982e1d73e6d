package main

import (
	"os"
	"runtime"
)

// spareProcs is the GOMAXPROCS that leaves one of the Go runtime's Ps idle
// while every loop waits in epoll_wait, or 0 to leave it as it is.
//
// A loop waits in a system call while holding its P. When no P is idle,
// the runtime's sysmon takes the P of a thread that has been in a system
// call for 20 µs or more and hands it to another thread (a futex wake-up,
// a spinning thread, and sysmon itself polling every 20 µs after it): with
// as many loops as Ps, that is nearly every wait of a busy loop. With one
// P idle, sysmon leaves a waiting thread its P for 10 ms. A P is not a
// core: the spare one only runs the runtime's own goroutines (signals,
// timers, the resolver, metrics), which would otherwise take a loop's.
// An explicit GOMAXPROCS in the environment is the operator's choice.
func spareProcs(loops, procs int, env string) int {
	if env != "" || procs > loops {
		return 0
	}
	return loops + 1
}

// leaveSpareProc applies spareProcs to this process.
func leaveSpareProc(loops int) {
	if n := spareProcs(loops, runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}
