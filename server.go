package nproxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// Server owns a set of proxies, the options and logger they run with, their
// loops and their counters. Several Servers may run in one process, each
// with its own limits and log; they share no mutable state. The zero value
// is ready to use: errors only, on standard error, in Net::Proxy's format.
//
// The package-level functions (Mainloop, SetOptions, SetVerbosity...) work
// on DefaultServer, as Net::Proxy's class methods work on its one process.
type Server struct {
	mu       sync.Mutex
	proxies  []*Proxy
	options  Options
	log      logConfig
	access   atomic.Pointer[accessOutput] // nil: no access log
	stats    loop.Stats
	opened   atomic.Int64
	closed   atomic.Int64
	current  atomic.Pointer[run]
	draining atomic.Bool
}

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
	// ConnectTimeout bounds the connects of out connectors that set no
	// timeout of their own; 0 means loop.DefaultDialTimeout.
	ConnectTimeout time.Duration
	// Limits bound the clients of all the proxies together; a proxy's own
	// IdleTimeout overrides this one.
	Limits Limits
}

// Register includes p in the Server's next Mainloop or Serve.
func (s *Server) Register(p *Proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.proxies {
		if r == p {
			return
		}
	}
	s.proxies = append(s.proxies, p)
}

// Unregister excludes p from the Server's next Mainloop or Serve.
func (s *Server) Unregister(p *Proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.proxies {
		if r == p {
			s.proxies = append(s.proxies[:i], s.proxies[i+1:]...)
			return
		}
	}
}

// Proxies returns the registered proxies, in registration order.
func (s *Server) Proxies() []*Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Proxy(nil), s.proxies...)
}

// SetOptions sets the options of the Server's next Mainloop or Serve.
func (s *Server) SetOptions(o Options) {
	s.mu.Lock()
	s.options = o
	s.mu.Unlock()
}

// TotalOpened returns the number of connections accepted by all the
// Server's proxies (Net::Proxy's stat_total_opened).
func (s *Server) TotalOpened() int64 { return s.opened.Load() }

// TotalClosed returns the number of connections ended over all the Server's
// proxies (Net::Proxy's stat_total_closed).
func (s *Server) TotalClosed() int64 { return s.closed.Load() }

// SplicedBytes returns the bytes the Server relayed with splice(2).
func (s *Server) SplicedBytes() uint64 { return s.stats.Spliced.Load() }

// CopiedBytes returns the bytes the Server relayed through user-space
// buffers (hooks, TLS, handshakes).
func (s *Server) CopiedBytes() uint64 { return s.stats.Copied.Load() }

// Mainloop listens for every registered proxy and relays their connections.
// With max > 0 it closes the listeners once max connections were opened and
// returns once max were fully processed; with max 0 it returns on SIGINT,
// SIGTERM or SIGHUP ("Caught INT signal"), or on Stop. Every socket is closed
// when it returns.
func (s *Server) Mainloop(max int) error {
	return s.serve(context.Background(), max, true)
}

// Serve is Mainloop for a program that embeds the Server: it relays until
// ctx is done or Stop is called, and leaves signals to the program.
func (s *Server) Serve(ctx context.Context) error {
	return s.serve(ctx, 0, false)
}

// ServeMax is Serve with Mainloop's connection budget: with max > 0 the
// listeners close once max connections were opened and it returns once
// max were fully processed. The command runs its proxies with it, and
// handles the signals itself (drain, reload).
func (s *Server) ServeMax(ctx context.Context, max int) error {
	return s.serve(ctx, max, false)
}

// Stop makes a running Mainloop or Serve close everything and return. It is
// safe to call from any goroutine, and does nothing when the Server is not
// running.
func (s *Server) Stop() {
	if r := s.current.Load(); r != nil {
		r.stop()
	}
}

// SetDraining marks the Server as draining (or not): Ready reports false
// while it drains, so that a load balancer sends new clients elsewhere.
func (s *Server) SetDraining(draining bool) { s.draining.Store(draining) }

// Ready reports whether the Server is running, every listener of every
// loop is listening, and it is not draining.
func (s *Server) Ready() bool {
	r := s.current.Load()
	return r != nil && r.listening.Load() == int64(len(r.loops)) && !s.draining.Load()
}

func (s *Server) serve(ctx context.Context, max int, signals bool) error {
	defer s.log.flush() // the last lines, such as the loops' Closing ones
	s.mu.Lock()
	proxies := append([]*Proxy(nil), s.proxies...)
	o := s.options
	s.mu.Unlock()
	if len(proxies) == 0 {
		return errors.New("no proxy registered")
	}
	r := &run{srv: s, max: int64(max), drainState: newDrainState(), limits: o.Limits}
	if err := r.start(o, proxies); err != nil {
		return err
	}
	if !s.current.CompareAndSwap(nil, r) {
		r.closeLoops()
		return errors.New("Mainloop is already running")
	}
	defer s.current.Store(nil)

	done := make(chan struct{})
	go r.stopOn(ctx, signals, done)
	err := r.wait()
	r.flushAccess() // the lines of connections closed as the loops ended
	close(done)
	r.reloadMu.Lock()
	for _, p := range r.all {
		p.run = nil
	}
	r.reloadMu.Unlock()
	return err
}

// run is one Mainloop: its loops and its connection budget.
type run struct {
	srv        *Server
	loops      []*loop.Loop
	access     map[*loop.Loop]*accessBuffer // each loop's; fixed before the loops run
	max        int64
	accepts    atomic.Int64 // connections opened in this run
	ends       atomic.Int64 // connections closed in this run
	listening  atomic.Int64 // loops whose listeners listen
	limits     Limits       // the Server's own
	globals    []*loop.Gate // each loop's share of limits
	reloadMu   sync.Mutex   // one Reload at a time
	proxies    []*Proxy     // the proxies serving now (under reloadMu)
	all        []*Proxy     // every proxy that served in the run
	lastID     int          // the highest proxy number given
	stopOnce   sync.Once
	listenOnce sync.Once
	drainState
}

func (r *run) start(o Options, proxies []*Proxy) error {
	for i, p := range proxies {
		if err := p.check(); err != nil {
			return &ConfigError{Proxy: i + 1, Err: err}
		}
	}
	n := max(o.Loops, 1)
	if o.Limits.MaxConn == 0 {
		o.Limits.MaxConn = defaultMaxConn()
	}
	r.proxies, r.all, r.lastID = proxies, slices.Clone(proxies), len(proxies)
	for j, p := range proxies {
		p.run, p.id = r, j+1
		p.listening = make([][]*loop.Socket, n)
		p.swapped.Store(nil)
	}
	r.access = make(map[*loop.Loop]*accessBuffer, n)
	for i := 0; i < n; i++ {
		l, err := loop.New(loop.Config{
			BufferSize:  o.BufferSize,
			PipeSize:    o.PipeSize,
			MaxPipes:    maxPipesPerLoop(n),
			NoSplice:    o.NoSplice,
			ReusePort:   n > 1,
			Logger:      r.srv.Logger(),
			Stats:       &r.srv.stats,
			DialTimeout: o.ConnectTimeout,
			AfterPass:   r.srv.log.flush,
		})
		if err != nil {
			r.closeLoops()
			return err
		}
		r.loops = append(r.loops, l)
		global := o.Limits.gate(n, nil)
		r.globals = append(r.globals, global)
		r.access[l] = newAccessBuffer(r.srv, l)
		for j, p := range proxies {
			if err := p.listenGated(l, i, global); err != nil {
				r.closeLoops()
				return &ConfigError{Proxy: j + 1, Err: fmt.Errorf("'in' connector: %w", err)}
			}
		}
	}
	return nil
}

// stopOn stops the run when ctx is done or, if signals, on SIGINT, SIGTERM
// or SIGHUP, until done is closed.
func (r *run) stopOn(ctx context.Context, signals bool, done <-chan struct{}) {
	caught := make(chan os.Signal, 1)
	if signals {
		signal.Notify(caught, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(caught)
	}
	select {
	case sig := <-caught:
		r.srv.Logger().Log(context.Background(), LevelNotice, "Caught "+signalName(sig)+" signal")
		r.stop()
	case <-ctx.Done():
		r.stop()
	case <-done:
	}
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
		// Posted work runs once Run has started the listeners.
		l.Post(func() { r.listening.Add(1) })
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
		close(r.stopped)
		for _, l := range r.loops {
			l.Stop()
		}
	})
}

// accepted counts a connection and closes every listener once the
// connection budget is opened, as Net::Proxy does, so that no client is
// accepted only to be dropped. A proxy driven on a loop of its own, outside
// any Server (as connector tests do), has no run.
func (r *run) accepted() {
	if r == nil {
		return
	}
	r.srv.opened.Add(1)
	if r.accepts.Add(1) == r.max {
		r.listenOnce.Do(func() {
			for _, l := range r.loops {
				l.Post(l.CloseListeners)
			}
		})
	}
}

// logAccess adds client's access line to its loop's buffer, if the Server
// has an access log: a map read and an append, no lock.
func (r *run) logAccess(p *Proxy, client *loop.Socket) {
	if r == nil || r.srv.access.Load() == nil {
		return
	}
	if b := r.access[client.Loop()]; b != nil { // nil for a socket moved to a loop of another run
		b.add(p, client)
	}
}

// accessLogging says whether client's target must be kept for an access
// line.
func (r *run) accessLogging() bool { return r != nil && r.srv.access.Load() != nil }

// flushAccess writes what the loops' access buffers hold, once they ended.
func (r *run) flushAccess() {
	for _, b := range r.access {
		b.flush()
	}
}

func (r *run) closed() {
	if r == nil {
		return
	}
	r.srv.closed.Add(1)
	if r.ends.Add(1) == r.max {
		r.stop()
	}
	r.checkIdle()
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

// PassStats returns the pass-time histogram of each loop of the running
// Server, none when it does not run. Safe from any goroutine.
func (s *Server) PassStats() []loop.PassStats {
	r := s.current.Load()
	if r == nil {
		return nil
	}
	st := make([]loop.PassStats, len(r.loops))
	for i, l := range r.loops {
		st[i] = l.PassStats()
	}
	return st
}
