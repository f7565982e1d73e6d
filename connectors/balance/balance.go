// Package balance spreads a proxy's clients over several servers, each
// reached by an out connector of its own (tcp, ssl, connect...):
//
//	out, _ := balance.New([]balance.Server{
//		{Out: &tcp.Out{Host: "10.0.0.1", Port: 80}, Weight: 1},
//		{Out: &tcp.Out{Host: "10.0.0.2", Port: 80}, Weight: 2},
//	}, balance.Config{Balance: balance.LeastConn})
//	p := nproxy.New(&tcp.In{Port: 8080}, out)
//
// (ExampleNew runs it.) The command makes one from an out side with a servers list:
//
//	out: {type: tcp, balance: leastconn, check: tcp, interval: 2, rise: 2, fall: 3,
//	      servers: [{host: 10.0.0.1, port: 80}, {host: 10.0.0.2, port: 80, weight: 2}]}
//
// A connect that fails tries the next server for the same client, and marks
// the server down: for a back-off (1 s, doubling to 30 s) without health
// checks, or until Rise checks in a row succeed with them. Checks are
// non-blocking connects on the loop, every Interval, off the relay's path.
// Every loop keeps its own state (counts, weights, up or down), found once
// per client with no lock: loops share nothing but the configuration.
package balance

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// Policy is how a server is picked for a client.
type Policy string

// The policies, named as haproxy names them.
const (
	RoundRobin Policy = "roundrobin" // in turn, in proportion to the weights (the default)
	LeastConn  Policy = "leastconn"  // the fewest connections open, relative to the weight
	Source     Policy = "source"     // a hash of the client's address: a client sticks to a server
)

// Server is one server of the set.
type Server struct {
	// Out reaches the server.
	Out connectors.Out
	// Weight is the server's share; 0 means 1.
	Weight int
	// Name names the server in log lines (host:port).
	Name string
	// Host and Port are what a health check connects to.
	Host string
	Port int
}

// Config tunes the balancing and the checks. The zero value is round-robin
// without checks.
type Config struct {
	// Balance is the policy; "" means RoundRobin.
	Balance Policy
	// Check is "tcp" for a connect every Interval, "" for none.
	Check string
	// Interval between checks; 0 means 2 s.
	Interval time.Duration
	// Rise is how many checks in a row bring a server up; 0 means 2.
	Rise int
	// Fall is how many checks in a row take it down; 0 means 3.
	Fall int
}

// Out is the set of servers as a proxy's out connector.
type Out struct {
	servers []Server
	cfg     Config
	loops   sync.Map // *loop.Loop → *state
}

// New returns an out connector over servers.
func New(servers []Server, cfg Config) (*Out, error) {
	if len(servers) == 0 {
		return nil, errors.New("servers: the list is empty")
	}
	switch cfg.Balance {
	case "":
		cfg.Balance = RoundRobin
	case RoundRobin, LeastConn, Source:
	default:
		return nil, fmt.Errorf("balance %q unknown (roundrobin, leastconn or source)", connectors.Clip(string(cfg.Balance)))
	}
	if cfg.Check != "" && cfg.Check != "tcp" {
		return nil, fmt.Errorf("check %q unknown (tcp)", connectors.Clip(cfg.Check))
	}
	cfg.Interval = defaultTo(cfg.Interval, 2*time.Second)
	cfg.Rise = defaultTo(cfg.Rise, 2)
	cfg.Fall = defaultTo(cfg.Fall, 3)
	for i := range servers {
		servers[i].Weight = defaultTo(servers[i].Weight, 1)
	}
	return &Out{servers: servers, cfg: cfg}, nil
}

func defaultTo[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Open implements connectors.Out: it picks a server and tries the others
// in turn while connects fail.
func (o *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	st := o.state(l)
	a := &attempt{st: st, h: h, tried: make([]bool, len(st.servers))}
	a.next(l, client, st.pick(client), nil)
}

// Start implements connectors.Starter: the loop's state, and its health
// checks, begin with the loop rather than with its first client.
func (o *Out) Start(l *loop.Loop) { o.state(l) }

// Stop implements connectors.Starter: the loop's checks end (the
// connections open go on).
func (o *Out) Stop(l *loop.Loop) { o.state(l).stopped = true }

// state is the loop's own, made by Start or on its first client.
func (o *Out) state(l *loop.Loop) *state {
	if st, ok := o.loops.Load(l); ok {
		return st.(*state)
	}
	st := newState(o, l)
	o.loops.Store(l, st)
	return st
}

// attempt is one client's way through the servers.
type attempt struct {
	st    *state
	h     connectors.Handler
	tried []bool
}

// next tries server i, or the next one not tried yet; err is the last
// failure, reported when every server failed.
func (a *attempt) next(l *loop.Loop, client *loop.Socket, i int, err error) {
	i = a.st.nextUp(i, a.tried)
	if i < 0 || client.Closed() {
		if err == nil {
			err = errors.New("no server up")
		}
		a.h.Failed(l, client, err)
		return
	}
	a.tried[i] = true
	a.st.servers[i].Out.Open(l, client, &serverHandler{attempt: a, i: i})
}

// serverHandler hears one server's connect for one client.
type serverHandler struct {
	*attempt
	i int
}

func (s *serverHandler) Accepted(l *loop.Loop, client *loop.Socket) { s.h.Accepted(l, client) }

func (s *serverHandler) Connected(l *loop.Loop, client, server *loop.Socket) {
	st := s.st
	st.connected(s.i)
	server.Closer = &st.server[s.i]
	s.h.Connected(l, client, server)
}

func (s *serverHandler) Failed(l *loop.Loop, client *loop.Socket, err error) {
	s.st.failed(s.i, err)
	s.next(l, client, s.i+1, err)
}

// sourceHash is where a client's address falls: the same address, the same
// server while the set of servers up does not change.
func sourceHash(client *loop.Socket) uint32 {
	h := fnv.New32a()
	if ap, err := netip.ParseAddrPort(client.Nick()); err == nil {
		b := ap.Addr().As16()
		h.Write(b[:])
	}
	return h.Sum32()
}
