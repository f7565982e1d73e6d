// Package tcp is Net::Proxy's tcp connector: on the in side it listens for
// clients, on the out side it connects to the server, both in plain TCP
// (IPv4 or IPv6), so that the relay can splice.
//
//	p := nproxy.New(&tcp.In{Port: 6789}, &tcp.Out{Host: "remotehost", Port: 9876})
//
// Its type name is "tcp": --in type=tcp,port=6789 on the command line.
package tcp

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
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
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	listen := c.Accept.Listen
	if c.Hook == nil {
		listen = c.Accept.ListenToRelay // nothing reads a client before the relay
	}
	return listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		h.Accepted(l, client)
	})
}

// Out connects to Host:Port for each client; without them, to the
// destination the client asked its in connector for (socks5, connect).
type Out struct {
	// Host is the server's address or name; names are resolved off the loop.
	// Empty (with Port 0) means the client's requested destination.
	Host string `param:"host"`
	// Port is the server's TCP port.
	Port int `param:"port,port"`
	// Timeout bounds the connect; 0 means loop.DefaultDialTimeout.
	Timeout time.Duration `param:"timeout"`
	// Transparent binds the connection to the client's own address
	// (IP_TRANSPARENT), so that the server sees the client; see the README
	// for the routing it needs.
	Transparent bool `param:"transparent"`
	// Hook, if set, sees the data read from the server.
	Hook loop.Hook
	// Send writes a PROXY protocol header to the server first, if configured.
	proxyproto.Send
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	if err := connectors.CheckTarget(c.Host, c.Port); err != nil {
		return err
	}
	return c.Send.Validate()
}

// String returns host:port, the server the connector goes to, or nothing
// when it goes where each client asks.
func (c *Out) String() string {
	if c.Host == "" {
		return ""
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	host, port, err := connectors.Target(client, c.Host, c.Port)
	if err != nil {
		h.Failed(l, client, err)
		return
	}
	var opt loop.DialOptions
	if c.Transparent {
		opt = loop.DialOptions{Local: netip.AddrPortFrom(client.RemoteAddr().Addr(), 0), Transparent: true}
	}
	h = c.Send.Wrap(h)
	l.DialWith(opt, host, port, c.Timeout, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		server.Connector, server.Hook = c, c.Hook
		h.Connected(l, client, server)
	})
}
