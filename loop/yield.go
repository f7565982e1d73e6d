package loop

import (
	"runtime"
	"time"
)

// yieldEvery is how often a busy loop gives Go's scheduler a turn.
//
// Go's sysmon preempts a goroutine that has run for 10 ms (forcePreemptNS)
// without being rescheduled, and a loop relaying bulk never blocks long
// enough to be. When sysmon finds it inside a system call (a splice), it
// takes its P away, the return from the call must win a P back (a futex
// wake of another thread), and sysmon, having "woken somebody", drops its
// own sleep back to 20 µs for the next fifty rounds: measured on the unix
// bulk chain, about 2,300 sysmon wake-ups a second, each a context switch
// on the core the relay's peers need, and a sixth of the relay's CPU. A
// yield every 2 ms shows sysmon a new scheduling tick before its 10 ms are
// up; with the thread locked it costs one hand-off of the P, at most once a
// pass and 500 times a second.
const yieldEvery = 2 * time.Millisecond

// yielder remembers when the loop last yielded, on the clock of Loop.now.
type yielder struct{ last int64 }

// after runs once per pass, given the pass's start, and reports whether
// it yielded.
func (y *yielder) after(passStart int64) bool {
	if passStart-y.last < int64(yieldEvery) {
		return false
	}
	y.last = passStart
	runtime.Gosched()
	return true
}
