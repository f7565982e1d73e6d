package udp

import (
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// Out opens one connected UDP socket to Host:Port per flow, so that the
// server sees a distinct source port per client.
type Out struct {
	// Host is the server's address or name; names are resolved off the loop.
	Host string `param:"host,required"`
	// Port is the server's UDP port.
	Port int `param:"port,required,port"`
	// Timeout bounds the name resolution; 0 means loop.DefaultDialTimeout.
	Timeout time.Duration `param:"timeout"`
	// Hook, if set, sees each datagram from the server.
	Hook loop.Hook
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	l.DialDatagram(c.Host, c.Port, c.Timeout, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		server.Connector, server.Hook = c, c.Hook
		h.Connected(l, client, server)
	})
}
