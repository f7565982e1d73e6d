// Package connectors defines what a Net::Proxy connector is in nproxy, and
// finds connectors by their type name for the command and its configuration.
//
// A proxy joins an In connector, which listens and hands over clients, to an
// Out connector, which opens the connection to the server for each client:
//
//	in := &tcp.In{Port: 6789}
//	out := &tcp.Out{Host: "remotehost", Port: 9876}
//	p := nproxy.New(in, out)
//
// Each connector lives in a package of its own under connectors/ and
// registers its type name (tcp, dummy, connect, dual, ssl...) with Register,
// so that Build can make it from Net::Proxy-style parameters:
//
//	in, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "tcp", "port": "6789"})
//
// (ExampleBuild shows it run.)
package connectors

import "github.com/nproxy/nproxy/loop"

// In is the in side of a proxy: it listens, and passes each client that is
// ready to be relayed to the handler.
type In interface {
	// Listen opens the connector's listeners on l. It is called once per
	// loop, before the loop runs; an error means nothing was left open.
	Listen(l *loop.Loop, h Handler) error
}

// Out is the out side of a proxy: it opens the connection to the server.
type Out interface {
	// Open starts connecting to the server for client, without blocking, and
	// later calls h.Connected or h.Failed on the loop.
	Open(l *loop.Loop, client *loop.Socket, h Handler)
}

// Starter is implemented by out connectors that keep state per loop and
// have work of their own on it, such as health checks: Start runs once per
// loop, before the loop runs or on it; Stop, on the loop, ends that work
// when a reload retires the connector.
type Starter interface {
	Start(l *loop.Loop)
	Stop(l *loop.Loop)
}

// Router is implemented by in connectors that pick the server for each
// client themselves, as dual does. The proxy then leaves its out connector,
// which must be dummy, alone.
type Router interface {
	In
	// PicksServer marks the connector; it is never called.
	PicksServer()
}

// Handler is what connectors report to: the proxy. Its methods run on the
// loop goroutine.
type Handler interface {
	// Accepted counts a new client and hands it to the proxy's out
	// connector. Connectors that choose the server themselves (dual) call it
	// at accept time all the same, so that counting matches Net::Proxy.
	Accepted(l *loop.Loop, client *loop.Socket)
	// Connected relays client and server from now on.
	Connected(l *loop.Loop, client, server *loop.Socket)
	// Failed logs why the client cannot be served and closes it.
	Failed(l *loop.Loop, client *loop.Socket, err error)
}

// Side says which end of a proxy a connector serves.
type Side string

// The two sides of a proxy, named as in Net::Proxy's configuration.
const (
	SideIn  Side = "in"
	SideOut Side = "out"
)
