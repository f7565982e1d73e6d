package loop

import (
	"sync/atomic"
	"time"
)

// PassBuckets are the upper bounds of the histogram of the time a loop
// spends per pass (handling one epoll_wait's events, timers and closes,
// without the wait itself). A pass that takes long delays every other
// socket of the loop, which is what the histogram is for.
var PassBuckets = [...]time.Duration{
	10 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
}

// passCounters is written by the loop goroutine only, once per pass, and
// read by a metrics scrape. The atomics are uncontended (one writer), so a
// pass pays a few nanoseconds for them against the microseconds of its
// epoll_wait; a scrape reads them without stopping the loop.
type passCounters struct {
	buckets [len(PassBuckets) + 1]atomic.Uint64 // the last one is +Inf
	sumNs   atomic.Uint64
	timers  atomic.Int64
}

func (l *Loop) recordPass(start time.Time) {
	d := time.Since(start)
	i := 0
	for i < len(PassBuckets) && d > PassBuckets[i] {
		i++
	}
	l.passes.buckets[i].Add(1)
	l.passes.sumNs.Add(uint64(d))
	l.passes.timers.Store(int64(len(l.timers)))
}

// PassStats is a snapshot of a loop's pass times and timers.
type PassStats struct {
	// Buckets[i] counts the passes that took at most PassBuckets[i] and
	// more than PassBuckets[i-1]; the last element counts the slower ones.
	Buckets [len(PassBuckets) + 1]uint64
	// Sum is the time spent in all passes.
	Sum time.Duration
	// Timers is the number of pending timers at the end of the last pass.
	Timers int
}

// Count returns the number of passes.
func (p PassStats) Count() uint64 {
	var n uint64
	for _, c := range p.Buckets {
		n += c
	}
	return n
}

// PassStats returns the loop's pass histogram. Safe from any goroutine.
func (l *Loop) PassStats() PassStats {
	var p PassStats
	for i := range p.Buckets {
		p.Buckets[i] = l.passes.buckets[i].Load()
	}
	p.Sum = time.Duration(l.passes.sumNs.Load())
	p.Timers = int(l.passes.timers.Load())
	return p
}
