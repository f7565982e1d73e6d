package balance

import (
	"fmt"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// Back-off of a server that failed, without health checks: it is tried
// again after downMin, then twice as long after each new failure.
const (
	downMin = time.Second
	downMax = 30 * time.Second
)

// state is one loop's view of the servers.
type state struct {
	l       *loop.Loop
	servers []Server
	server  []serverState
	cfg     Config
	current int  // round-robin: the last server picked
	stopped bool // no more checks: a reload retired the connector
}

type serverState struct {
	open      int       // connections open (leastconn)
	weight    int       // smooth weighted round-robin's running weight
	down      bool      // not picked
	downUntil time.Time // without checks: tried again after
	backoff   time.Duration
	streak    int // checks in a row that disagree with the state
}

// SocketClosed implements loop.Closer for the server's socket: one
// connection fewer.
func (s *serverState) SocketClosed(*loop.Socket) { s.open-- }

func newState(o *Out, l *loop.Loop) *state {
	st := &state{l: l, servers: o.servers, server: make([]serverState, len(o.servers)), cfg: o.cfg}
	if o.cfg.Check == "tcp" {
		for i := range st.servers {
			st.scheduleCheck(i)
		}
	}
	return st
}

// pick is the policy's choice for client, before failures.
func (st *state) pick(client *loop.Socket) int {
	switch st.cfg.Balance {
	case LeastConn:
		return st.leastConn()
	case Source:
		return st.source(client)
	}
	return st.roundRobin()
}

// roundRobin is nginx's smooth weighted round-robin: each server gains its
// weight, the richest is picked and pays the total; over a cycle each is
// picked in proportion to its weight, interleaved.
func (st *state) roundRobin() int {
	best, total := -1, 0
	for i := range st.server {
		if !st.up(i) {
			continue
		}
		s := &st.server[i]
		s.weight += st.servers[i].Weight
		total += st.servers[i].Weight
		if best < 0 || s.weight > st.server[best].weight {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	st.server[best].weight -= total
	return best
}

// leastConn picks the fewest open connections per unit of weight.
func (st *state) leastConn() int {
	best := -1
	for i := range st.server {
		if !st.up(i) {
			continue
		}
		if best < 0 || st.server[i].open*st.servers[best].Weight < st.server[best].open*st.servers[i].Weight {
			best = i
		}
	}
	return max(best, 0)
}

// source maps the client's address on the servers that are up, by weight.
func (st *state) source(client *loop.Socket) int {
	total := 0
	for i := range st.server {
		if st.up(i) {
			total += st.servers[i].Weight
		}
	}
	if total == 0 {
		return 0
	}
	at := int(sourceHash(client) % uint32(total))
	for i := range st.server {
		if st.up(i) {
			if at -= st.servers[i].Weight; at < 0 {
				return i
			}
		}
	}
	return 0
}

// up says whether server i may be picked: not down, or down without checks
// and its back-off over (it is tried again).
func (st *state) up(i int) bool {
	s := &st.server[i]
	return !s.down || st.cfg.Check == "" && !time.Now().Before(s.downUntil)
}

// nextUp is the first server from i on (round the list) that is up and not
// tried yet, -1 if none.
func (st *state) nextUp(i int, tried []bool) int {
	n := len(st.server)
	for k := 0; k < n; k++ {
		j := (i + k) % n
		if !tried[j] && st.up(j) {
			return j
		}
	}
	return -1
}

func (st *state) connected(i int) {
	s := &st.server[i]
	s.open++
	if st.cfg.Check == "" && s.down {
		st.setDown(i, false, "connect succeeded")
		s.backoff = 0
	}
}

// failed marks server i down after a failed connect: with checks, they
// bring it back; without, its back-off does.
func (st *state) failed(i int, err error) {
	s := &st.server[i]
	if st.cfg.Check == "" {
		s.backoff = min(max(2*s.backoff, downMin), downMax)
		s.downUntil = time.Now().Add(s.backoff)
	}
	if !s.down {
		st.setDown(i, true, err.Error())
	}
}

func (st *state) setDown(i int, down bool, why string) {
	st.server[i].down, st.server[i].streak = down, 0
	word := "up"
	if down {
		word = "down"
	}
	st.l.Warn("server "+st.servers[i].Name+" "+word, fmt.Sprintf("server %s is %s: %s", st.servers[i].Name, word, why))
}

// scheduleCheck connects to server i after the interval, without blocking
// the loop, and counts the result towards rise or fall.
func (st *state) scheduleCheck(i int) {
	st.l.AfterFunc(st.cfg.Interval, func() {
		if st.stopped {
			return
		}
		srv := st.servers[i]
		st.l.Dial(srv.Host, srv.Port, st.cfg.Interval, func(s *loop.Socket, err error) {
			if s != nil {
				st.l.Close(s)
			}
			st.checked(i, err)
			st.scheduleCheck(i)
		})
	})
}

func (st *state) checked(i int, err error) {
	s := &st.server[i]
	ok := err == nil
	if ok == !s.down {
		s.streak = 0
		return
	}
	s.streak++
	switch {
	case ok && s.streak >= st.cfg.Rise:
		st.setDown(i, false, fmt.Sprintf("%d checks passed", s.streak))
	case !ok && s.streak >= st.cfg.Fall:
		st.setDown(i, true, err.Error())
	}
}
