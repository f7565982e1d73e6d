package loop

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pooledPipe returns the inode of the pool's free pipe, or 0 if it has none.
func pooledPipe(t *testing.T, l *Loop) (ino uint64) {
	t.Helper()
	onLoop(l, func() {
		if l.pipes.Idle() == 0 {
			return
		}
		p, _ := l.pipes.Get()
		var st unix.Stat_t
		if err := unix.Fstat(p.R, &st); err != nil {
			t.Error(err)
		}
		ino = st.Ino
		l.pipes.Put(p)
	})
	return ino
}

// A relay that keeps splicing keeps its pipe; once it goes quiet, the pool
// gives its pipes back, so an nproxy without traffic holds no pipe fds.
func TestIdlePipesAreReleased(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	client, server := relayedPair(t, l, nil)
	defer unix.Close(client)
	defer unix.Close(server)
	chunk := make([]byte, 4*copyWindow) // a stream: its reads fill the copy window
	send := func() {
		t.Helper()
		if _, err := unix.Write(client, chunk); err != nil {
			t.Fatal(err)
		}
		if err := readFull(server, chunk); err != nil {
			t.Fatal(err)
		}
	}
	send()
	first := pooledPipe(t, l)
	if first == 0 {
		t.Fatal("no pipe in the pool after a spliced chunk")
	}
	for end := time.Now().Add(5 * pipeIdle / 2); time.Now().Before(end); time.Sleep(pipeIdle / 5) {
		send()
	}
	if ino := pooledPipe(t, l); ino != first {
		t.Fatalf("the pool made a new pipe (inode %d, was %d) while the relay kept splicing", ino, first)
	}
	deadline := time.Now().Add(3 * pipeIdle)
	for pooledPipe(t, l) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the pool still holds a pipe %v after the last splice", 3*pipeIdle)
		}
		time.Sleep(pipeIdle / 10)
	}
}
