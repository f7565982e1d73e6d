package icmp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// Out is a ptunnel client: for each client it opens a tunnel through the
// ptunnel proxy at ProxyHost to Host:Port, which the proxy connects.
type Out struct {
	// ProxyHost is the ptunnel proxy (ptunnel's -p): an IPv4 address or a
	// name, resolved off the loop.
	ProxyHost string `param:"proxy_host,required"`
	// Host is the destination the proxy connects to (ptunnel's -da).
	Host string `param:"host,required"`
	// Port is the destination's TCP port (ptunnel's -dp).
	Port int `param:"port,required,port"`
	// Password answers the proxy's challenge (ptunnel's -x).
	Password string `param:"password"`
	// Hook, if set, sees the data that comes out of the tunnel.
	Hook loop.Hook
	// Stats counts the packets dropped.
	Stats Stats

	mu       sync.Mutex
	carriers map[*loop.Loop]*carrier
}

// Open implements connectors.Out: the tunnel is open for the relay at once,
// as with ptunnel, and the proxy's verdict (a wrong password, a destination
// it cannot reach) ends it later with a close.
func (o *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	resolveIPv4(l, o.ProxyHost, o.Host, func(proxy, dst [4]byte, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		if client.Closed() {
			return
		}
		c, err := o.carrier(l)
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		id, ok := freeID(c)
		if !ok {
			h.Failed(l, client, errors.New("icmp: no free session id"))
			return
		}
		s := newSession(c, id, id, proxy, o.Password)
		s.dstIP, s.dstPort = dst, uint32(o.Port)
		server, err := s.attach()
		if err != nil {
			s.end(false)
			h.Failed(l, client, err)
			return
		}
		s.send(stateStart, nil)
		server.Connector, server.Hook = o, o.Hook
		server.SetNick(fmt.Sprintf("icmp %s id %d", ipString(proxy), s.id))
		h.Connected(l, client, server)
	})
}

// carrier returns the loop's raw socket, opening it on first use.
func (o *Out) carrier(l *loop.Loop) (*carrier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.carriers[l]; c != nil && !c.sock.Closed() {
		return c, nil
	}
	c, err := openCarrier(l, clientRole, &o.Stats)
	if err != nil {
		return nil, err
	}
	if o.carriers == nil {
		o.carriers = map[*loop.Loop]*carrier{}
	}
	o.carriers[l] = c
	return c, nil
}

// freeID picks a random session id that the carrier does not use, as
// ptunnel's client does; with most ids taken it may give up.
func freeID(c *carrier) (uint16, bool) {
	for range 64 {
		id := uint16(rand.Uint32())
		if c.sessions[id] == nil {
			return id, true
		}
	}
	return 0, false
}

// resolveIPv4 finds the IPv4 addresses of two hosts, off the loop when they
// are names (ptunnel's protocol carries IPv4 only), and calls done on l.
func resolveIPv4(l *loop.Loop, a, b string, done func(ia, ib [4]byte, err error)) {
	ia, okA := literal4(a)
	ib, okB := literal4(b)
	if okA && okB {
		done(ia, ib, nil)
		return
	}
	go func() {
		ia, err := lookup4(a)
		var ib [4]byte
		if err == nil {
			ib, err = lookup4(b)
		}
		l.Post(func() { done(ia, ib, err) })
	}()
}

func literal4(host string) ([4]byte, bool) {
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().Is4() {
		return [4]byte{}, false
	}
	return a.Unmap().As4(), true
}

func lookup4(host string) ([4]byte, error) {
	if a, ok := literal4(host); ok {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return [4]byte{}, fmt.Errorf("icmp: %s: %w", host, err)
	}
	if len(ips) == 0 {
		return [4]byte{}, fmt.Errorf("icmp: %s has no IPv4 address", host)
	}
	return ips[0].Unmap().As4(), nil
}

// destination is where a ptunnel client asked to go.
type destination struct {
	ip   [4]byte
	port uint32
}

// Destination returns the host (an address) and port.
func (d destination) Destination() (string, int) {
	return ipString(d.ip), int(d.port)
}

func (d destination) String() string {
	return net.JoinHostPort(ipString(d.ip), strconv.Itoa(int(d.port)))
}
