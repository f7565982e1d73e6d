package loop

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nproxy/nproxy/internal/testrun"
)

// unread returns the bytes queued in fd's receive buffer.
func unread(t *testing.T, fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Bytes stashed before the relay (dual's early client data and probe bytes
// go to the server, connect's bytes after the 200 reply go to the client)
// wait in out while the receiver's socket is full. Bytes read after them
// must not be spliced past them: canSplice refuses while out holds any, so
// they queue behind, and splicing resumes once out is drained.
func TestStashedBytesAreNotOvertaken(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stashOnServ bool
	}{{"client's early bytes", false}, {"server's bytes after the reply", true}} {
		t.Run(tc.name, func(t *testing.T) {
			stats := &Stats{}
			l := newTestLoop(t, Config{Stats: stats})
			testrun.InBackground(t, l)
			client, in := tcpPair(t)
			out, server := tcpPair(t)
			defer unix.Close(client)
			defer unix.Close(server)
			unix.SetNonblock(in, true)
			unix.SetNonblock(out, true)
			// sender writes after the stash, towards receiver; full is the
			// loop's socket to the receiver, filled before the relay.
			sender, receiver, full := client, server, out
			if tc.stashOnServ {
				sender, receiver, full = server, client, in
			}
			filler := testrun.FillSocket(t, full)
			early := bytes.Repeat([]byte("early..."), 1024)
			onLoop(l, func() {
				a, _ := l.Adopt(in, nil)
				b, _ := l.Adopt(out, nil)
				a.Raw, b.Raw = true, true
				stashing := a
				if tc.stashOnServ {
					stashing = b
				}
				// The later bytes come through the stashing socket too,
				// which streamed already: its reads would be spliced but
				// for the stashed bytes (short ones are copied, and so
				// kept in order anyway).
				stashing.streaming = true
				stashing.Stash(early)
				l.Relay(a, b)
			})
			later := bytes.Repeat([]byte("later..."), 1024)
			if _, err := unix.Write(sender, later); err != nil {
				t.Fatal(err)
			}
			// The loop reads the later bytes while the early ones still
			// wait: the receiver has read nothing yet.
			source := in
			if tc.stashOnServ {
				source = out
			}
			deadline := time.Now().Add(5 * time.Second)
			for unread(t, source) > 0 {
				if time.Now().After(deadline) {
					t.Fatal("the loop did not read the later bytes within 5 s")
				}
				time.Sleep(time.Millisecond)
			}
			want := append(append(append([]byte{}, filler...), early...), later...)
			got := make([]byte, len(want))
			if err := readFull(receiver, got); err != nil {
				t.Fatal(err)
			}
			if i := firstMismatch(got, want); i >= 0 {
				t.Fatalf("byte %d of %d differs: got %q, want %q (spliced bytes overtook the stashed ones)",
					i, len(want), got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
			}
			// With out drained, the next bytes splice again.
			spliced := stats.Spliced.Load()
			if _, err := unix.Write(sender, later); err != nil {
				t.Fatal(err)
			}
			if err := readFull(receiver, got[:len(later)]); err != nil {
				t.Fatal(err)
			}
			if stats.Spliced.Load() == spliced {
				t.Error("the relay did not go back to splicing once the stashed bytes were written")
			}
		})
	}
}

func firstMismatch(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
