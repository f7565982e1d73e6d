package nproxy

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nproxy/nproxy/loop"
)

// Options tune Mainloop. The zero value is Net::Proxy's behaviour: one loop
// and a 16 KiB buffer limit per socket.
type Options struct {
	// Loops is the number of reactors, each on its own thread with its own
	// SO_REUSEPORT listeners; 0 means 1.
	Loops int
	// BufferSize is the data pending for a socket before its peer stops
	// being read: 0 means 16 KiB, a negative value unlimited (what Net::Proxy
	// 0.13 and the command's buffer_size call 0).
	BufferSize int
	// PipeSize, if above 0, sets the capacity of splice's pipes.
	PipeSize int
	// NoSplice relays everything through buffers.
	NoSplice bool
}

var (
	optionsMu sync.Mutex
	options   Options
	current   atomic.Pointer[run]
)

// SetOptions sets the options of the next Mainloop.
func SetOptions(o Options) {
	optionsMu.Lock()
	options = o
	optionsMu.Unlock()
}

// run is one Mainloop: its loops and its connection budget.
type run struct {
	loops      []*loop.Loop
	max        int64
	openedBase int64
	closedBase int64
	stopOnce   sync.Once
	listenOnce sync.Once
}

// Mainloop listens for every registered proxy and relays their connections.
// With max > 0 it closes the listeners once max connections were opened and
// returns once max were fully processed; with max 0 it returns on SIGINT,
// SIGTERM or SIGHUP ("Caught INT signal"), or on Stop. Every socket is closed
// when it returns.
func Mainloop(max int) error {
	registryMu.Lock()
	proxies := append([]*Proxy(nil), registered...)
	registryMu.Unlock()
	if len(proxies) == 0 {
		return errors.New("no proxy registered")
	}
	optionsMu.Lock()
	o := options
	optionsMu.Unlock()

	r := &run{max: int64(max), openedBase: totalOpened.Load(), closedBase: totalClosed.Load()}
	if err := r.start(o, proxies); err != nil {
		return err
	}
	if !current.CompareAndSwap(nil, r) {
		r.closeLoops()
		return errors.New("Mainloop is already running")
	}
	defer current.Store(nil)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-signals:
			logger.Log(nil, LevelNotice, "Caught "+signalName(sig)+" signal")
			r.stop()
		case <-done:
		}
	}()
	err := r.wait()
	close(done)
	for _, p := range proxies {
		p.run = nil
	}
	return err
}

var relayStats loop.Stats

// SplicedBytes returns the bytes relayed with splice(2), over all runs.
func SplicedBytes() uint64 { return relayStats.Spliced.Load() }

// CopiedBytes returns the bytes relayed through user-space buffers (hooks,
// TLS, handshakes), over all runs.
func CopiedBytes() uint64 { return relayStats.Copied.Load() }

// Stop makes a running Mainloop close everything and return. It is safe to
// call from any goroutine, and does nothing when no Mainloop runs.
func Stop() {
	if r := current.Load(); r != nil {
		r.stop()
	}
}

func (r *run) start(o Options, proxies []*Proxy) error {
	for i, p := range proxies {
		if err := p.check(); err != nil {
			return &ConfigError{Proxy: i + 1, Err: err}
		}
	}
	n := max(o.Loops, 1)
	for i := 0; i < n; i++ {
		l, err := loop.New(loop.Config{
			BufferSize: o.BufferSize,
			PipeSize:   o.PipeSize,
			NoSplice:   o.NoSplice,
			ReusePort:  n > 1,
			Logger:     logger,
			Stats:      &relayStats,
		})
		if err != nil {
			r.closeLoops()
			return err
		}
		r.loops = append(r.loops, l)
		for j, p := range proxies {
			p.run = r
			if err := p.in.Listen(l, p); err != nil {
				r.closeLoops()
				return &ConfigError{Proxy: j + 1, Err: fmt.Errorf("'in' connector: %w", err)}
			}
		}
	}
	return nil
}

// closeLoops releases loops that never ran.
func (r *run) closeLoops() {
	for _, l := range r.loops {
		l.Discard()
	}
}

func (r *run) wait() error {
	errs := make(chan error, len(r.loops))
	for _, l := range r.loops {
		go func() { errs <- l.Run() }()
	}
	var first error
	for range r.loops {
		if err := <-errs; err != nil && first == nil {
			first = err
			r.stop()
		}
	}
	return first
}

func (r *run) stop() {
	r.stopOnce.Do(func() {
		for _, l := range r.loops {
			l.Stop()
		}
	})
}

// accepted closes every listener once the connection budget is opened, as
// Net::Proxy does, so that no client is accepted only to be dropped.
func (r *run) accepted() {
	if r != nil && r.max > 0 && totalOpened.Load()-r.openedBase >= r.max {
		r.listenOnce.Do(func() {
			for _, l := range r.loops {
				l.Post(l.CloseListeners)
			}
		})
	}
}

func (r *run) closed() {
	if r != nil && r.max > 0 && totalClosed.Load()-r.closedBase >= r.max {
		r.stop()
	}
}

// ConfigError says that a proxy cannot run as configured, found at start:
// its in connector could not listen (address in use, unknown host), or its
// connectors do not fit together.
type ConfigError struct {
	Proxy int // the proxy's position among the registered ones, from 1
	Err   error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("proxy #%d: %v", e.Proxy, e.Err) }

func (e *ConfigError) Unwrap() error { return e.Err }

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGHUP:
		return "HUP"
	}
	return sig.String()
}
