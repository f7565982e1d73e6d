// Package nproxy is Net::Proxy for Go: a proxy is an in connector and an out
// connector, and one event loop relays every connection of every registered
// proxy, splicing plain TCP without copying it.
//
//	p := nproxy.New(
//		&tcp.In{Port: 6789},
//		&tcp.Out{Host: "remotehost", Port: 9876},
//	)
//	p.Register()
//	nproxy.Mainloop(0) // relay until a signal
//
// As in Net::Proxy, Mainloop(max) returns after max connections were fully
// processed, and each proxy counts its opened and closed connections. Unlike
// Net::Proxy, nothing blocks the loop: connects, CONNECT requests, the dual
// decision and TLS handshakes are all state machines on it.
package nproxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/loop"
)

// Version is nproxy's version.
const Version = "0.1.0"

// Proxy joins an in connector to an out connector.
type Proxy struct {
	in     connectors.In
	out    connectors.Out
	opened atomic.Int64
	closed atomic.Int64
	run    *run // the Mainloop the proxy is serving, if any
}

// New returns a proxy from in to out; it serves once registered.
func New(in connectors.In, out connectors.Out) *Proxy {
	return &Proxy{in: in, out: out}
}

// check refuses connectors that do not fit together.
func (p *Proxy) check() error {
	if _, picks := p.in.(connectors.Router); picks {
		switch p.out.(type) {
		case dummy.Connector, *dummy.Connector:
		default:
			return errors.New("'out' connector must be dummy: the 'in' connector picks the server itself")
		}
	}
	return nil
}

// In returns the connector that accepts clients.
func (p *Proxy) In() connectors.In { return p.in }

// Out returns the connector that opens connections to the server.
func (p *Proxy) Out() connectors.Out { return p.out }

var (
	registryMu  sync.Mutex
	registered  []*Proxy
	totalOpened atomic.Int64
	totalClosed atomic.Int64
)

// Register includes the proxy in the next Mainloop.
func (p *Proxy) Register() {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, r := range registered {
		if r == p {
			return
		}
	}
	registered = append(registered, p)
}

// Unregister excludes the proxy from the next Mainloop.
func (p *Proxy) Unregister() {
	registryMu.Lock()
	defer registryMu.Unlock()
	for i, r := range registered {
		if r == p {
			registered = append(registered[:i], registered[i+1:]...)
			return
		}
	}
}

// Opened returns the number of connections this proxy accepted.
func (p *Proxy) Opened() int64 { return p.opened.Load() }

// Closed returns the number of this proxy's connections that ended.
func (p *Proxy) Closed() int64 { return p.closed.Load() }

// TotalOpened returns the number of connections accepted by all proxies.
func TotalOpened() int64 { return totalOpened.Load() }

// TotalClosed returns the number of connections ended over all proxies.
func TotalClosed() int64 { return totalClosed.Load() }

// Accepted implements connectors.Handler: the client counts as opened (on
// the in side, as in Net::Proxy) and the out connector opens its server.
func (p *Proxy) Accepted(l *loop.Loop, client *loop.Socket) {
	client.Closer = p
	p.opened.Add(1)
	totalOpened.Add(1)
	if logger.Enabled(context.Background(), LevelInfo) {
		logger.Info("connection from " + client.Nick())
	}
	p.run.accepted()
	if _, picks := p.in.(connectors.Router); !picks {
		p.out.Open(l, client, p)
	}
}

// Connected implements connectors.Handler.
func (p *Proxy) Connected(l *loop.Loop, client, server *loop.Socket) {
	if client.Closed() {
		// The client left while the server was being reached.
		l.Close(server)
		return
	}
	if err := connectors.Answer(client, server, nil); err != nil {
		l.Close(server)
		p.Failed(l, client, err)
		return
	}
	if logger.Enabled(context.Background(), LevelDebug) {
		logger.Debug("relaying " + client.Nick() + " <-> " + server.Nick())
	}
	l.Relay(client, server)
}

// Failed implements connectors.Handler.
func (p *Proxy) Failed(l *loop.Loop, client *loop.Socket, err error) {
	logger.Error(err.Error())
	connectors.Answer(client, nil, err) // a SOCKS5 or CONNECT client hears why
	l.Close(client)
}

// SocketClosed implements loop.Closer: a client's close is a connection
// closed.
func (p *Proxy) SocketClosed(*loop.Socket) {
	p.closed.Add(1)
	totalClosed.Add(1)
	p.run.closed()
}
