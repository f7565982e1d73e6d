// Package dummy is Net::Proxy's dummy connector, which does nothing. It is
// the out connector of a proxy whose in connector picks the server itself,
// such as dual:
//
//	p := nproxy.New(&dual.In{...}, dummy.Connector{})
package dummy

import (
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("dummy", func(connectors.Side) any { return &Connector{} })
}

// Connector does nothing on either side.
type Connector struct{}

// Listen implements connectors.In by opening nothing.
func (Connector) Listen(*loop.Loop, connectors.Handler) error { return nil }

// Open implements connectors.Out by opening nothing: the in connector
// that chose dummy opens the server connection itself.
func (Connector) Open(*loop.Loop, *loop.Socket, connectors.Handler) {}
