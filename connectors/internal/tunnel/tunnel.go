// Package tunnel holds what nproxy's tunnel connectors (icmp, dns) share: the
// local stream a tunnel session hands to the relay, and the memory of
// session ids that ended, against replays.
//
//	relaySide, tunnelSide, err := tunnel.Pair(l, session)
//	h.Accepted(l, relaySide) // the relay joins it to the server
package tunnel

import (
	"sync"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Pair makes a session's local stream, a unix socketpair on l: the relay's
// end (no handler, for the proxy to relay) and the tunnel's end, handled by
// h and watched for reading. The kernel's socket buffers then carry the
// relay's backpressure to the tunnel and back.
func Pair(l *loop.Loop, h loop.Handler) (relaySide, tunnelSide *loop.Socket, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	relaySide, _ = l.Adopt(fds[0], nil)
	tunnelSide, _ = l.Adopt(fds[1], h)
	l.WatchReader(tunnelSide)
	return relaySide, tunnelSide, nil
}

// Recent remembers the session ids that ended in the last Window, so that a
// replayed session start opens nothing. Its zero value (with Window set) is
// ready; it is safe for concurrent use.
type Recent[K comparable] struct {
	// Window is how long an id stays refused.
	Window time.Duration

	mu    sync.Mutex
	ended map[K]time.Time
}

// sweepAbove is the size past which Add drops expired ids: the map stays
// bounded by what can end within Window.
const sweepAbove = 1024

// Add remembers that id ended now.
func (r *Recent[K]) Add(id K) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended == nil {
		r.ended = map[K]time.Time{}
	}
	now := time.Now()
	if len(r.ended) > sweepAbove {
		for k, t := range r.ended {
			if now.Sub(t) > r.Window {
				delete(r.ended, k)
			}
		}
	}
	r.ended[id] = now
}

// Has reports whether id ended less than Window ago.
func (r *Recent[K]) Has(id K) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.ended[id]
	return ok && time.Since(t) < r.Window
}
