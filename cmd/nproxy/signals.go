package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nproxy/nproxy"
	"golang.org/x/sys/unix"
)

// early catches the stopping signals from main's first statement on:
// Mainloop installs its handler only once the configuration is read and the
// listeners are bound, and a signal before that would kill the process the
// default way, leaving whatever it had half made.
var early *signalCatcher

type signalCatcher struct {
	caught   atomic.Value // the os.Signal, once one came
	finished chan struct{}
}

// stopPoll is how often a signal caught here asks a Mainloop that may be
// starting to stop: nproxy.Stop does nothing until the Mainloop is running,
// and Mainloop's own handler misses a signal that came before it.
const stopPoll = 10 * time.Millisecond

func catchSignals() *signalCatcher {
	c := &signalCatcher{finished: make(chan struct{})}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		c.caught.Store(<-ch)
		tick := time.NewTicker(stopPoll)
		defer tick.Stop()
		for {
			nproxy.Stop()
			select {
			case <-c.finished:
				return
			case <-tick.C:
			}
		}
	}()
	return c
}

// mainloop runs nproxy.Mainloop(max), unless a signal came during start-up:
// then it says so, as Mainloop would, and returns at once.
func (c *signalCatcher) mainloop(max int) error {
	defer close(c.finished)
	if sig, ok := c.caught.Load().(os.Signal); ok {
		nproxy.Logger().Log(context.Background(), nproxy.LevelNotice, "Caught "+signalName(sig)+" signal")
		return nil
	}
	return nproxy.Mainloop(max)
}

// signalName is Net::Proxy's name of a signal: "TERM" for SIGTERM.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return strings.TrimPrefix(unix.SignalName(s), "SIG")
	}
	return sig.String()
}
