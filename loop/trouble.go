package loop

import (
	"fmt"
	"time"
)

// troubleWindow is the span a burst of one trouble is summarized over: the
// first occurrence is logged at once, the repeats in the next troubleWindow
// are counted and logged as one line at its end. A backend down for an hour
// thus makes two lines a minute, not one per client. (A variable so that a
// test need not wait 30 s.)
var troubleWindow = 30 * time.Second

// maxTroubles bounds the kinds of trouble tracked at once; past it, new
// kinds are counted together, so that a flood of distinct messages (one
// per unreachable name) cannot grow the map.
const maxTroubles = 64

type trouble struct {
	msg     string
	repeats int
}

// Warn logs msg at LevelWarning, which the default verbosity shows, once per
// burst: repeats of the same key within troubleWindow of the first are
// counted, and summarized in one line when the window ends. Use it for
// trouble an operator must see but that may happen per connection (a
// backend refusing); use the logger directly for one-off events.
func (l *Loop) Warn(key, msg string) {
	if t, ok := l.troubles[key]; ok {
		t.repeats++
		return
	}
	if len(l.troubles) >= maxTroubles {
		key, msg = "", "other warnings (too many kinds at once to name each)"
		if t, ok := l.troubles[key]; ok {
			t.repeats++
			return
		}
	}
	if l.troubles == nil {
		l.troubles = map[string]*trouble{}
	}
	l.log.Log(nil, LevelWarning, msg)
	t := &trouble{msg: msg}
	l.troubles[key] = t
	l.AfterFunc(troubleWindow, func() {
		delete(l.troubles, key)
		if t.repeats > 0 {
			l.log.Log(nil, LevelWarning, fmt.Sprintf("%s (%d more times in %v)", t.msg, t.repeats, troubleWindow))
		}
	})
}
