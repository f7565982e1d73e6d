package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nproxy/nproxy"
	"golang.org/x/sys/unix"
)

// early catches the signals from main's first statement on: the proxies
// run only once the configuration is read and the listeners are bound, and
// a signal before that would kill the process the default way, leaving
// whatever it had half made.
//
// What each signal does, as haproxy's operators expect:
//   - SIGTERM, SIGUSR1: drain (nproxy.Server.Shutdown): readiness false,
//     listeners closed, connections in flight finish within the grace
//     period, then exit 0;
//   - SIGINT, or a second SIGTERM during a drain: stop at once;
//   - SIGHUP: reload the configuration (see reload.go);
//   - SIGUSR2: binary upgrade (see upgrade.go).
var early *signalCatcher

type signalCatcher struct {
	caught    atomic.Value  // the first os.Signal that ends the process
	finished  chan struct{} // closed once the proxies stopped
	grace     atomic.Int64  // the drain's bound, a time.Duration
	upgrading atomic.Bool   // SIGUSR2's work is under way
	reload    func()        // SIGHUP's work once running; nil before
	mu        sync.Mutex    // guards reload
}

// stopPoll is how often a signal caught here asks a Server that may be
// starting to stop or drain: nproxy.Stop and Shutdown do nothing until the
// Server is running, and it may be just starting.
const stopPoll = 10 * time.Millisecond

// defaultGrace is how long a drain lets connections finish (--grace).
const defaultGrace = 30 * time.Second

func catchSignals() *signalCatcher {
	c := &signalCatcher{finished: make(chan struct{})}
	c.grace.Store(int64(defaultGrace))
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	go c.handle(ch)
	return c
}

// handle acts on each signal in turn. The first ending signal is recorded
// for a start-up still in progress (mainloop then returns at once).
func (c *signalCatcher) handle(ch <-chan os.Signal) {
	draining := false
	for sig := range ch {
		if sig == syscall.SIGHUP {
			c.onHangup()
			continue
		}
		if sig == syscall.SIGUSR2 {
			if c.upgrading.CompareAndSwap(false, true) {
				go c.upgrade()
			}
			continue
		}
		c.caught.CompareAndSwap(nil, sig)
		log(sig)
		if sig == syscall.SIGINT || draining {
			go c.retry(func() bool { nproxy.Stop(); return false })
			continue
		}
		draining = true
		go c.retry(c.drain)
	}
}

func log(sig os.Signal) {
	nproxy.Logger().Log(context.Background(), nproxy.LevelNotice, "Caught "+signalName(sig)+" signal")
}

// drain runs one Shutdown bounded by the grace period; it reports false
// while the Server is not running yet.
func (c *signalCatcher) drain() bool {
	grace := time.Duration(c.grace.Load())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := nproxy.DefaultServer.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		nproxy.Logger().Log(context.Background(), nproxy.LevelWarning,
			"grace period of "+grace.String()+" over: closing the connections left")
	}
	return !errors.Is(err, nproxy.ErrNotRunning)
}

// retry calls f every stopPoll until it reports done or the proxies
// stopped: a Server that is starting misses a Stop or Shutdown made a
// moment too early.
func (c *signalCatcher) retry(f func() bool) {
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for !f() {
		select {
		case <-c.finished:
			return
		case <-tick.C:
		}
	}
}

// onHangup reloads once running; during start-up there is nothing to
// reload yet, the file being read is the new one.
func (c *signalCatcher) onHangup() {
	c.mu.Lock()
	reload := c.reload
	c.mu.Unlock()
	if reload != nil {
		reload()
	}
}

// mainloop runs the proxies with the connection budget max, unless an
// ending signal came during start-up: then it says so, as Mainloop would,
// and returns at once.
func (c *signalCatcher) mainloop(max int, grace time.Duration) error {
	defer close(c.finished)
	if grace > 0 {
		c.grace.Store(int64(grace))
	}
	if sig, ok := c.caught.Load().(os.Signal); ok {
		log(sig)
		return nil
	}
	return nproxy.DefaultServer.ServeMax(context.Background(), max)
}

// signalName is Net::Proxy's name of a signal: "TERM" for SIGTERM.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return strings.TrimPrefix(unix.SignalName(s), "SIG")
	}
	return sig.String()
}
