package loop

import (
	"container/heap"
	"time"
)

// Timer is a deadline on the loop: its function runs on the loop goroutine.
// Every deadline nproxy has (connect, handshake, the dual decision, accept
// back-off) is one of these, and epoll_wait sleeps until the nearest.
type Timer struct {
	when  time.Time
	f     func()
	index int // position in the heap, -1 once fired or stopped
	heap  *timerHeap
}

// AfterFunc runs f on the loop after d.
func (l *Loop) AfterFunc(d time.Duration, f func()) *Timer {
	t := &Timer{when: time.Now().Add(d), f: f, heap: &l.timers}
	heap.Push(&l.timers, t)
	return t
}

// Stop cancels the timer; stopping a fired or stopped timer does nothing.
// Like every loop method it must be called on the loop goroutine.
func (t *Timer) Stop() {
	if t.index >= 0 {
		heap.Remove(t.heap, t.index)
	}
}

// timerHeap is a min-heap on deadlines.
type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

// waitMs is how long epoll_wait may sleep: until the nearest deadline,
// rounded up so that the loop never wakes just before it and spins.
func (h *timerHeap) waitMs() int {
	if len(*h) == 0 {
		return -1
	}
	d := time.Until((*h)[0].when)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

func (h *timerHeap) runExpired() {
	if len(*h) == 0 {
		return
	}
	now := time.Now()
	for len(*h) > 0 && !(*h)[0].when.After(now) {
		t := heap.Pop(h).(*Timer)
		t.f()
	}
}

func (h *timerHeap) clear() {
	for _, t := range *h {
		t.index = -1
	}
	*h = nil
}
