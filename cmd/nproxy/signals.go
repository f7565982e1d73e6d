package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync"
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
	mu       sync.Mutex
	running  bool      // Mainloop was called
	caught   os.Signal // a signal that came before it was
	finished chan struct{}
}

// handoff is how long a signal caught while Mainloop runs is left to
// Mainloop's own handler, which logs it and stops the loops. Only a signal
// in the instant between Mainloop's start and its handler's installation
// is left to this one, which then asks Mainloop to stop every stopPoll:
// nproxy.Stop does nothing until Mainloop counts as running.
const (
	handoff  = time.Second
	stopPoll = 10 * time.Millisecond
)

func catchSignals() *signalCatcher {
	c := &signalCatcher{finished: make(chan struct{})}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-ch
		c.mu.Lock()
		running := c.running
		if !running {
			c.caught = sig // mainloop sees it and returns at once
		}
		c.mu.Unlock()
		if running {
			c.stopMainloop(sig)
		}
	}()
	return c
}

// stopMainloop stops a running Mainloop whose handler missed sig.
func (c *signalCatcher) stopMainloop(sig os.Signal) {
	select {
	case <-c.finished:
		return
	case <-time.After(handoff):
	}
	logCaught(sig)
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
}

// mainloop runs nproxy.Mainloop(max), unless a signal came during start-up:
// then it says so, as Mainloop would, and returns at once.
func (c *signalCatcher) mainloop(max int) error {
	c.mu.Lock()
	sig := c.caught
	c.running = sig == nil
	c.mu.Unlock()
	if sig != nil {
		logCaught(sig)
		return nil
	}
	defer close(c.finished)
	return nproxy.Mainloop(max)
}

func logCaught(sig os.Signal) {
	nproxy.Logger().Log(context.Background(), nproxy.LevelNotice, "Caught "+signalName(sig)+" signal")
}

// signalName is Net::Proxy's name of a signal: "TERM" for SIGTERM.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return strings.TrimPrefix(unix.SignalName(s), "SIG")
	}
	return sig.String()
}
