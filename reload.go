package nproxy

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// Reload replaces the running Server's proxies with proxies, without a
// refused connection: a new proxy whose in connector and limits equal a
// running one's (same type, address and parameters) takes over that
// proxy's listening sockets, and its out connector serves the next clients
// while the connections already relayed go on; a new proxy that matches
// none starts listening; a running proxy that none matches stops listening
// and its connections drain. Loops, buffers and the Server's own limits
// stay as they are. Reload returns once every loop has made the change;
// a listener that cannot open (address in use) is reported, and the rest
// of the change stands. Safe from any goroutine.
func (s *Server) Reload(proxies []*Proxy) error {
	r := s.current.Load()
	if r == nil {
		return ErrNotRunning
	}
	for i, p := range proxies {
		if err := p.check(); err != nil {
			return &ConfigError{Proxy: i + 1, Err: err}
		}
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.drainStarted {
		return errors.New("nproxy: draining, not reloading")
	}
	retired := r.outs()
	next, added, removed := r.plan(proxies)
	err := r.onEveryLoop(func(i int, l *loop.Loop) error {
		for _, out := range retired {
			out.Stop(l)
		}
		// A removed proxy's socket goes to an added one on the same
		// address (its in side changed), else it closes.
		defer l.EndHandover()
		for _, p := range removed {
			for _, ls := range p.listening[i] {
				l.Handover(ls)
			}
			p.listening[i] = nil
		}
		var errs []error
		for _, p := range next {
			if s, ok := p.current().out.(connectors.Starter); ok {
				s.Start(l)
			}
		}
		for _, p := range added {
			if err := p.listenGated(l, i, r.globals[i]); err != nil {
				errs = append(errs, &ConfigError{Proxy: p.id, Err: fmt.Errorf("'in' connector: %w", err)})
			}
		}
		return errors.Join(errs...)
	})
	r.proxies = next
	s.mu.Lock()
	s.proxies = append([]*Proxy(nil), next...)
	s.mu.Unlock()
	return err
}

// outs are the out connectors serving now that have work on the loops.
func (r *run) outs() []connectors.Starter {
	var starters []connectors.Starter
	for _, p := range r.proxies {
		if s, ok := p.current().out.(connectors.Starter); ok {
			starters = append(starters, s)
		}
	}
	return starters
}

// plan matches the new proxies with the running ones: the running ones
// kept (now serving with a new proxy's out connector), the new ones to
// start, the running ones to stop.
func (r *run) plan(proxies []*Proxy) (next, added, removed []*Proxy) {
	kept := make([]bool, len(r.proxies))
	for _, np := range proxies {
		j := r.match(np, kept)
		if j < 0 {
			r.lastID++
			np.run, np.id = r, r.lastID
			np.listening = make([][]*loop.Socket, len(r.loops))
			r.all = append(r.all, np)
			added = append(added, np)
			next = append(next, np)
			continue
		}
		kept[j] = true
		op := r.proxies[j]
		op.swapped.Store(np)
		next = append(next, op)
	}
	for j, op := range r.proxies {
		if !kept[j] {
			removed = append(removed, op)
		}
	}
	return next, added, removed
}

// match is the running proxy, not yet kept, that np can take over.
func (r *run) match(np *Proxy, kept []bool) int {
	for j, op := range r.proxies {
		if !kept[j] && reflect.DeepEqual(op.in, np.in) && reflect.DeepEqual(op.limits, np.limits) {
			return j
		}
	}
	return -1
}

// onEveryLoop runs f on each loop and waits for all: changes to listeners
// belong to their loop's goroutine.
func (r *run) onEveryLoop(f func(i int, l *loop.Loop) error) error {
	errs := make([]error, len(r.loops))
	var wg sync.WaitGroup
	for i, l := range r.loops {
		wg.Add(1)
		l.Post(func() {
			defer wg.Done()
			errs[i] = f(i, l)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return errors.Join(errs...)
	case <-r.stopped:
		return ErrNotRunning
	}
}

// current is the proxy whose connectors serve p's next clients: p, or the
// one a Reload put in its place.
func (p *Proxy) current() *Proxy {
	if n := p.swapped.Load(); n != nil {
		return n
	}
	return p
}
