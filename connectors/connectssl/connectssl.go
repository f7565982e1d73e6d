// Package connectssl is Net::Proxy's connect_ssl connector: it reaches a
// server through a web proxy's CONNECT method, as the connect connector
// does, then runs a TLS client handshake inside the tunnel, as the ssl
// connector does. Both exchanges run on the loop.
//
//	out := &connectssl.Out{Out: connect.Out{Host: "example.org", Port: 443, ProxyHost: "proxy"},
//		Params: ssl.Params{VerifyMode: -1}}
//	p := nproxy.New(&tcp.In{Port: 6789}, out)
//
// Its type name is "connect_ssl":
// --out type=connect_ssl,host=example.org,port=443,proxy_host=proxy,proxy_port=3128
package connectssl

import (
	"fmt"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/connect"
	"github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("connect_ssl", func(side connectors.Side) any {
		if side == connectors.SideOut {
			return &Out{Params: ssl.Params{VerifyMode: -1}}
		}
		return nil // Net::Proxy's N/A: connect_ssl only connects out
	})
}

// Out has the connect connector's parameters and the ssl connector's TLS
// options; see connect.Out and ssl.Params for their meaning. Timeout bounds
// the tunnel set-up and, separately, the handshake; Hook sees the plaintext
// read from the server.
type Out struct {
	// Out is the tunnel to the server through the web proxy.
	connect.Out
	// Params are the TLS options; Hostname defaults to Host.
	ssl.Params

	valid connectors.Validation
	tls   *ssl.Out
}

// Validate implements connectors.Validator: the tunnel's parameters, then
// the TLS options, each error naming its key.
func (c *Out) Validate() error {
	return c.valid.Run(c.Out.Validate, func() error {
		c.tls = &ssl.Out{Host: c.Host, Port: c.Port, Timeout: c.Timeout, Params: c.Params,
			Via: &c.Out, Name: "connect_ssl"}
		return c.tls.Validate()
	})
}

// Open implements connectors.Out: the CONNECT exchange, then the handshake
// (ssl's, over the tunnel), then the relay.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, fmt.Errorf("'out' connector (connect_ssl): %w", err))
		return
	}
	c.tls.Open(l, client, h)
}
