package loop

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects log lines written from the loop goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A burst of one trouble is one line at once and one summary with the
// count when its window ends; kinds past maxTroubles are counted together.
func TestWarnOncePerBurst(t *testing.T) {
	troubleWindow = 50 * time.Millisecond // no other test of the package warns
	var logs lockedBuffer
	l := newTestLoop(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	runLoop(t, l)
	onLoop(l, func() {
		for range 5 {
			l.Warn("refused", "can't connect to backend: connection refused")
		}
		l.Warn("other", "a single trouble")
		for i := range maxTroubles + 10 {
			l.Warn(fmt.Sprint("kind", i), "many kinds")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "other warnings (too many kinds at once to name each) (11 more times") {
		if time.Now().After(deadline) {
			t.Fatalf("no summaries within 5 s:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	for want, n := range map[string]int{
		"level=WARN msg=\"can't connect to backend: connection refused\"":     1,
		"can't connect to backend: connection refused (4 more times in 50ms)": 1,
		"a single trouble": 1,
		"many kinds\"":     maxTroubles - 2,
		"other warnings (too many kinds at once to name each)": 2,
	} {
		if got := strings.Count(out, want); got != n {
			t.Errorf("%d lines say %q, want %d:\n%s", got, want, n, out)
		}
	}
}
