package nproxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNotRunning is returned by Shutdown when the Server has no Mainloop or
// Serve running.
var ErrNotRunning = errors.New("nproxy: server not running")

// Shutdown drains the running Server, as net/http's Server.Shutdown does:
// Ready turns false first (a load balancer stops sending clients), then
// every listener closes (a new client is refused, not accepted and
// dropped), and the connections in flight go on until they end by
// themselves or ctx is done; then whatever is left is closed and Mainloop
// or Serve returns. Shutdown returns nil when every connection ended by
// itself, ctx's error when some were cut, and ErrNotRunning when there was
// nothing to drain. Safe from any goroutine; Stop during a Shutdown cuts
// the drain short.
func (s *Server) Shutdown(ctx context.Context) error {
	r := s.current.Load()
	if r == nil {
		return ErrNotRunning
	}
	s.SetDraining(true)
	r.drain()
	defer r.stop()
	select {
	case <-r.idle:
		return nil
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainState is a run's part of Shutdown: the listeners close once, and
// idle is closed once no connection is left.
type drainState struct {
	drainOnce sync.Once
	draining  atomic.Bool // every listener is closed
	// drainStarted refuses Reloads from the drain's start (under reloadMu).
	drainStarted bool
	idleOnce     sync.Once
	idle         chan struct{}
	stopped      chan struct{} // closed by stop
}

func newDrainState() drainState {
	return drainState{idle: make(chan struct{}), stopped: make(chan struct{})}
}

// drain closes the listeners of every loop and waits until they are
// closed, so that no client is accepted after it: from then on the live
// count only falls.
func (r *run) drain() {
	r.drainOnce.Do(func() {
		// No Reload may open listeners once these close.
		r.reloadMu.Lock()
		r.drainStarted = true
		r.reloadMu.Unlock()
		var wg sync.WaitGroup
		for _, l := range r.loops {
			wg.Add(1)
			l.Post(func() { defer wg.Done(); l.CloseListeners() })
		}
		closed := make(chan struct{})
		go func() { wg.Wait(); close(closed) }()
		select {
		case <-closed:
		case <-r.stopped:
			return // a loop that is gone runs no posted work
		}
		r.draining.Store(true)
		r.checkIdle()
	})
}

// checkIdle closes idle once draining and no accepted connection is open.
func (r *run) checkIdle() {
	// closed and drain each check after their own write, so one of them
	// sees the last connection gone with the listeners closed.
	if r.draining.Load() && r.ends.Load() >= r.accepts.Load() {
		r.idleOnce.Do(func() { close(r.idle) })
	}
}
