// Package tcp is Net::Proxy's tcp connector: on the in side it listens for
// clients, on the out side it connects to the server, both in plain TCP
// (IPv4 or IPv6), so that the relay can splice.
//
//	p := nproxy.New(&tcp.In{Port: 6789}, &tcp.Out{Host: "remotehost", Port: 9876})
//
// Its type name is "tcp": --in type=tcp,port=6789 on the command line.
package tcp

import (
	"errors"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("tcp", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return &Out{}
	})
}

// In listens on Host:Port and hands each client to the proxy.
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// Hook, if set, sees the data read from clients.
	Hook loop.Hook
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	return connectors.Listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		h.Accepted(l, client)
	})
}

// Out connects to Host:Port for each client. With neither, it connects to
// the destination the client asked for, when its in connector learned one
// (connectors.Destination: icmp's tunnel requests).
type Out struct {
	// Host is the server's address or name; names are resolved off the loop.
	Host string `param:"host"`
	// Port is the server's TCP port.
	Port int `param:"port,port"`
	// Timeout bounds the connect; 0 means loop.DefaultDialTimeout.
	Timeout time.Duration `param:"timeout"`
	// Hook, if set, sees the data read from the server.
	Hook loop.Hook
}

// Validate implements connectors.Validator: host and port go together.
func (c *Out) Validate() error {
	switch {
	case c.Host == "" && c.Port != 0:
		return errors.New("host parameter is required with port (with neither, the destination the client asks for)")
	case c.Port == 0 && c.Host != "":
		return errors.New("port parameter is required with host (with neither, the destination the client asks for)")
	}
	return nil
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	host, port := c.Host, c.Port
	if host == "" && port == 0 {
		d, ok := client.State.(connectors.Destination)
		if !ok {
			h.Failed(l, client, errors.New("tcp out without host and port: the client asked for no destination"))
			return
		}
		host, port = d.Destination()
	}
	l.Dial(host, port, c.Timeout, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		server.Connector, server.Hook = c, c.Hook
		h.Connected(l, client, server)
	})
}
