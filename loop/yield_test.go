package loop

import (
	"testing"
	"time"
)

// The loop yields once yieldEvery has passed since its last yield, and not
// on the passes in between, however many.
func TestYieldEvery(t *testing.T) {
	t.Parallel()
	var y yielder
	start := int64(time.Hour) // a loop's clock starts at its epoch; any origin works
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, // the first pass after a long time
		{yieldEvery / 2, false},
		{yieldEvery - 1, false},
		{yieldEvery, true},
		{yieldEvery + yieldEvery/2, false},
		{3 * yieldEvery, true},
	}
	for _, s := range steps {
		if got := y.after(start + int64(s.at)); got != s.want {
			t.Errorf("pass at +%v: yielded %v, want %v", s.at, got, s.want)
		}
	}
}
