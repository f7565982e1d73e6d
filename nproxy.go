package nproxy

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/loop"
)

// Version is nproxy's version.
const Version = "0.1.0"

// Proxy joins an in connector to an out connector. It serves one Server at a
// time, from that Server's Mainloop or Serve.
type Proxy struct {
	in     connectors.In
	out    connectors.Out
	opened atomic.Int64
	closed atomic.Int64
	counts proxyCounters
	limits Limits
	// listening are the proxy's listeners, by loop (each touched by its
	// own loop only).
	listening [][]*loop.Socket
	// swapped is the proxy whose connectors and limits serve the next
	// clients, since a Reload.
	swapped atomic.Pointer[Proxy]
	run     *run // the run the proxy is serving, if any
	id      int  // the proxy's position in its Server, from 1, while it runs
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

// Register includes the proxy in the next Mainloop of DefaultServer.
func (p *Proxy) Register() { DefaultServer.Register(p) }

// Unregister excludes the proxy from the next Mainloop of DefaultServer.
func (p *Proxy) Unregister() { DefaultServer.Unregister(p) }

// Opened returns the number of connections this proxy accepted
// (Net::Proxy's stat_opened).
func (p *Proxy) Opened() int64 { return p.opened.Load() }

// Closed returns the number of this proxy's connections that ended
// (Net::Proxy's stat_closed).
func (p *Proxy) Closed() int64 { return p.closed.Load() }

// Accepted implements connectors.Handler: the client counts as opened (on
// the in side, as in Net::Proxy) and the out connector opens its server.
func (p *Proxy) Accepted(l *loop.Loop, client *loop.Socket) {
	client.Closer = p
	p.opened.Add(1)
	p.run.accepted()
	if p.run.accessLogging() {
		client.Nick() // now: getpeername fails once the client reset
	}
	if log := l.Logger(); log.Enabled(context.Background(), LevelNotice) {
		loop.Log(log, LevelNotice, "Accepted "+client.Nick()+" -> "+client.LocalName())
		loop.Log(log, LevelInfo, "connection from "+client.Nick())
	}
	if _, picks := p.in.(connectors.Router); !picks {
		p.current().out.Open(l, client, p)
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
	log := l.Logger()
	noticing := log.Enabled(context.Background(), LevelNotice)
	if noticing || p.run.accessLogging() {
		client.SetTarget(server.Nick())
	}
	if noticing {
		loop.Log(log, LevelNotice, "Connected "+server.LocalName()+" -> "+server.Nick())
		loop.Log(log, LevelNotice, "Peered "+client.Nick()+" with "+server.Nick())
		loop.Log(log, LevelDebug, "relaying "+client.Nick()+" <-> "+server.Nick())
	}
	l.Relay(client, server)
	if d := p.idleTimeout(); d > 0 {
		l.IdleTimeout(client, d)
	}
}

// Failed implements connectors.Handler: the error is counted by kind and
// ends the client's connection. A backend that refuses or cannot be reached,
// or a process out of fds, fails every client alike: that is one warning per
// burst with a count (loop.Warn), not a line per client.
func (p *Proxy) Failed(l *loop.Loop, client *loop.Socket, err error) {
	kind := connectErrorKind(err)
	p.counts.connectErrors[kind].Add(1)
	client.SetEnd(kind.end())
	if repeats(err) {
		l.Warn(err.Error(), err.Error())
	} else {
		l.Logger().Error(err.Error())
	}
	connectors.Answer(client, nil, err) // a SOCKS5 or CONNECT client hears why
	l.Close(client)
}

// repeats says whether err will fail the next clients too, until the
// backend or the fd supply recovers.
func repeats(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ETIMEDOUT, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// SocketClosed implements loop.Closer: a client's close is a connection
// closed, and its access line.
func (p *Proxy) SocketClosed(client *loop.Socket) {
	p.counts.add(client.Traffic())
	p.closed.Add(1)
	if log := client.Loop().Logger(); log.Enabled(context.Background(), LevelNotice) {
		p.logAccess(log, client)
	}
	p.run.logAccess(p, client)
	p.run.closed()
}
