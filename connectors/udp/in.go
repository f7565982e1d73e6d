package udp

import (
	"fmt"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("udp", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return &Out{}
	})
}

// Defaults of In's limits, used when a field is 0.
const (
	DefaultTimeout  = 60 * time.Second
	DefaultMaxFlows = 10000
)

// In receives datagrams on Host:Port and opens a flow for each client
// address. Its zero limits are the defaults.
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address, IPv4 and IPv6.
	Host string `param:"host"`
	// Port is the UDP port to listen on.
	Port int `param:"port,required,port"`
	// Timeout is how long a flow lives without a datagram either way;
	// 0 means DefaultTimeout.
	Timeout time.Duration `param:"timeout"`
	// MaxFlows bounds the flows of each listening socket on each loop: one
	// more evicts the least recently used. 0 means DefaultMaxFlows.
	MaxFlows int `param:"max_flows"`
	// MaxDatagram is the longest datagram relayed either way; longer ones
	// are dropped. 0 means loop.MaxDatagram (65,535).
	MaxDatagram int `param:"max_datagram"`
	// Hook, if set, sees each datagram from a client.
	Hook loop.Hook

	mu    sync.Mutex
	stats []*Stats
}

// Validate implements connectors.Validator.
func (c *In) Validate() error {
	if c.MaxFlows < 0 {
		return fmt.Errorf("max_flows must not be negative, not %d", c.MaxFlows)
	}
	if c.MaxDatagram < 0 || c.MaxDatagram > loop.MaxDatagram {
		return fmt.Errorf("max_datagram %d out of range (1-%d)", c.MaxDatagram, loop.MaxDatagram)
	}
	return nil
}

// Listen implements connectors.In: one flow table per listening address.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	addrs, err := connectors.ListenAddrs(c.Host, c.Port)
	if err != nil {
		return err
	}
	var opened []*loop.Socket
	for _, a := range addrs {
		t := newTable(c, l, h, !a.Addr().Is4())
		s, err := l.ListenPacket(a, t)
		if err != nil {
			for _, o := range opened {
				l.Close(o)
			}
			return fmt.Errorf("can't listen on %s port %d (udp): %w", a.Addr(), c.Port, err)
		}
		t.attach(s)
		opened = append(opened, s)
		c.mu.Lock()
		c.stats = append(c.stats, t.stats)
		c.mu.Unlock()
	}
	return nil
}

// Stats returns the counters of every flow table the connector opened (one
// per listening address and loop). Safe from any goroutine.
func (c *In) Stats() []*Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Stats(nil), c.stats...)
}

// Counts sums Stats. Safe from any goroutine.
func (c *In) Counts() Counts {
	var sum Counts
	for _, s := range c.Stats() {
		sum.add(s)
	}
	return sum
}

func (c *In) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *In) maxFlows() int {
	if c.MaxFlows <= 0 {
		return DefaultMaxFlows
	}
	return c.MaxFlows
}

func (c *In) maxDatagram() int {
	if c.MaxDatagram <= 0 {
		return loop.MaxDatagram
	}
	return c.MaxDatagram
}
