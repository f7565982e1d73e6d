package buffer

import (
	"bytes"
	"testing"
)

// A producer filling a reservation while the consumer drains everything
// keeps its place: the pending bytes do not move back to the start under it.
func TestReserveSurvivesDrain(t *testing.T) {
	r := NewRing(8)
	r.Write([]byte("abcde"))
	w := r.Reserve()
	if len(w) != 3 {
		t.Fatalf("reserved %d bytes, want the 3 after the pending ones", len(w))
	}
	r.Discard(5) // the consumer takes everything meanwhile
	copy(w, "fgh")
	r.Commit(3)
	if got := r.Peek(); !bytes.Equal(got, []byte("fgh")) {
		t.Fatalf("after commit: %q, want fgh", got)
	}
	// Wrapping: the next reservation is the free run at the start.
	w = r.Reserve()
	if len(w) != 5 {
		t.Fatalf("reserved %d after wrap, want 5", len(w))
	}
	r.Commit(copy(w, "ij"))
	var got []byte
	for r.Len() > 0 {
		p := r.Peek()
		got = append(got, p...)
		r.Discard(len(p))
	}
	if string(got) != "fghij" || r.Reserved() {
		t.Fatalf("read %q (reserved %v)", got, r.Reserved())
	}
}
