package tunnel

import (
	"testing"
	"time"
)

func TestRecent(t *testing.T) {
	r := Recent[uint16]{Window: 50 * time.Millisecond}
	if r.Has(7) {
		t.Fatal("an id that never ended is refused")
	}
	r.Add(7)
	if !r.Has(7) || r.Has(8) {
		t.Fatal("Has does not say which id ended")
	}
	time.Sleep(60 * time.Millisecond) // the window itself is what is tested
	if r.Has(7) {
		t.Fatal("an id is refused past its window")
	}
	for id := range uint16(sweepAbove + 2) {
		r.Add(id)
	}
	r.mu.Lock()
	n := len(r.ended)
	r.mu.Unlock()
	if n != sweepAbove+2 {
		t.Fatalf("%d ids remembered, want %d: none had expired", n, sweepAbove+2)
	}
}
