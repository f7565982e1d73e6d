package loop

import (
	"testing"
	"time"
)

// IdleTimeout judges every check against the full timeout: activity
// spaced at 5/8 of it never closes the socket, however many checks pass
// (a check that re-armed with what was left as the new timeout would shrink
// it below the spacing within a few rounds), and the socket closes about
// one timeout after the activity stops.
func TestIdleTimeoutKeepsItsPeriod(t *testing.T) {
	t.Parallel()
	const idle, pace, active = 400 * time.Millisecond, 250 * time.Millisecond, 2 * time.Second
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	a, _ := socketPair(t)
	closed := make(chan time.Time, 1)
	var stopped time.Time
	onLoop(l, func() {
		s, err := l.Adopt(a, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		s.Closer = closerFunc(func() { closed <- time.Now() })
		s.lastRead = l.now()
		l.IdleTimeout(s, idle)
		begin := time.Now()
		var touch func()
		touch = func() { // a read, as the relay records it
			if time.Since(begin) >= active {
				stopped = time.Now()
				return
			}
			s.lastRead = l.now()
			l.AfterFunc(pace, touch)
		}
		l.AfterFunc(pace, touch)
	})
	select {
	case at := <-closed:
		var quiet time.Duration
		onLoop(l, func() { quiet = at.Sub(stopped) })
		if stopped.IsZero() || quiet < 0 {
			t.Fatalf("closed while active, every %v, with idle_timeout %v", pace, idle)
		}
	case <-time.After(active + 5*time.Second):
		t.Fatal("not closed once idle")
	}
}

type closerFunc func()

func (f closerFunc) SocketClosed(*Socket) { f() }
