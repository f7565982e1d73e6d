// Package gnetrelay is a TCP relay on gnet v2, the strongest Go event-loop
// framework, written the way its documentation suggests: the upstream
// connection is registered into the client's own event loop, so both halves
// of a pair live on one loop and need no locks.
//
//	err := gnetrelay.Run("127.0.0.1:7000", "127.0.0.1:7001", 1)
//
// What gnet cannot do, and therefore what this relay does not do:
//   - dial out inside its loop: EventLoop.Register runs a blocking net.Dial in
//     a worker goroutine, then dup(2)s the fd into the loop (three fds for a
//     moment, one goroutine per pending connect);
//   - stop reading a connection: there is no "unwatch reader", gnet reads
//     whatever arrives into the connection's inbound buffer, so a fast sender
//     facing a slow receiver grows memory without bound (no backpressure);
//   - half-close: Conn has no CloseWrite, and EOF closes the connection, so an
//     EOF on one side closes both and a request-then-answer protocol loses
//     its answer;
//   - splice(2): every byte is copied through user space;
//   - guarantee pending data on close: the final flush gives up at EAGAIN.
package gnetrelay

import (
	"context"
	"net"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// Run relays every connection accepted on listen to target, with loops event
// loops, until the process ends.
func Run(listen, target string, loops int) error {
	addr, err := net.ResolveTCPAddr("tcp", target)
	if err != nil {
		return err
	}
	return gnet.Run(&relay{target: addr}, "tcp://"+listen,
		gnet.WithNumEventLoop(loops),
		// As every server does: a restarted relay must bind while old
		// connections to its port sit in TIME_WAIT.
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogLevel(logging.ErrorLevel))
}

type relay struct {
	gnet.BuiltinEventEngine
	target net.Addr
}

// pair is shared by the two connections of one relayed connection; only
// their common event loop touches it.
type pair struct {
	client, server gnet.Conn
	clientGone     bool
}

func (p *pair) peer(c gnet.Conn) gnet.Conn {
	if c == p.client {
		return p.server
	}
	return p.client
}

// OnOpen sees both the accepted clients and the upstream connections that
// Register opened; the latter arrive with their pair as context.
func (r *relay) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if p, ok := c.Context().(*pair); ok {
		if p.clientGone {
			return nil, gnet.Close
		}
		p.server = c
		p.client.Wake(nil) // flush what the client sent while we dialled
		return nil, gnet.None
	}
	p := &pair{client: c}
	c.SetContext(p)
	res, err := c.EventLoop().Register(gnet.NewContext(context.Background(), p), r.target)
	if err != nil {
		return nil, gnet.Close
	}
	go func() {
		if rr := <-res; rr.Err != nil {
			c.Close() // concurrency-safe: it is queued to the loop
		}
	}()
	return nil, gnet.None
}

// OnTraffic forwards everything buffered to the peer; before the upstream is
// connected the data stays in the inbound buffer until Wake.
func (r *relay) OnTraffic(c gnet.Conn) gnet.Action {
	p := c.Context().(*pair)
	peer := p.peer(c)
	if peer == nil {
		return gnet.None
	}
	buf, _ := c.Next(-1)
	if _, err := peer.Write(buf); err != nil {
		return gnet.Close
	}
	return gnet.None
}

// OnClose closes the peer too: gnet has no half-close.
func (r *relay) OnClose(c gnet.Conn, _ error) gnet.Action {
	p, ok := c.Context().(*pair)
	if !ok {
		return gnet.None
	}
	if peer := p.peer(c); peer != nil {
		peer.Close()
	} else {
		p.clientGone = true
	}
	return gnet.None
}
