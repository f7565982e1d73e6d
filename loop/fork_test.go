package loop

import (
	"testing"

	"golang.org/x/sys/unix"
)

// An fd closed while a forked child still holds a copy of it (between fork
// and exec; here, a dup) must not pass its events to the socket that
// reuses its number.
func TestClosedFdHeldByChildIsForgotten(t *testing.T) {
	WillFork()
	l := newTestLoop(t, Config{})
	defer l.shutdown()
	a, aPeer := socketPair(t)
	old, _ := l.Adopt(a, &recorder{})
	l.WatchReader(old)
	childCopy, err := unix.Dup(a)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(childCopy)
	l.Close(old)
	l.releaseClosed()

	b, bPeer := socketPair(t)
	defer unix.Close(bPeer)
	if b != a { // the number must be reused
		if err := unix.Dup3(b, a, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		unix.Close(b)
	}
	reused := &recorder{}
	s, _ := l.Adopt(a, reused)
	unix.Close(aPeer) // the old socket hangs up
	evs, err := l.poll.wait(nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		l.dispatch(ev)
	}
	if reused.reads != 0 || s.closed {
		t.Fatalf("the old fd's hang-up reached the socket that reuses its number (%d reads)", reused.reads)
	}
}
