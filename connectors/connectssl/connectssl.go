// Package connectssl is Net::Proxy's connect_ssl connector: it reaches a
// server through a web proxy's CONNECT method, as the connect connector
// does, then runs a TLS client handshake inside the tunnel, as the ssl
// connector does. Both exchanges run on the loop.
//
//	out := &connectssl.Out{Host: "example.org", Port: 443, ProxyHost: "proxy", Params: ssl.Params{VerifyMode: -1}}
//	p := nproxy.New(&tcp.In{Port: 6789}, out)
//
// Its type name is "connect_ssl":
// --out type=connect_ssl,host=example.org,port=443,proxy_host=proxy,proxy_port=3128
package connectssl

import (
	"fmt"
	"sync"
	"time"

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
// options; see connect.Out and ssl.Params for their meaning.
type Out struct {
	Host        string `param:"host,required"`
	Port        int    `param:"port,required,port"`
	ProxyHost   string `param:"proxy_host"`
	ProxyPort   int    `param:"proxy_port,port"`
	ProxyUser   string `param:"proxy_user"`
	ProxyPass   string `param:"proxy_pass"`
	ProxyAgent  string `param:"proxy_agent"`
	HeaderLimit int    `param:"header_limit"`
	// Timeout bounds the tunnel set-up and, separately, the handshake.
	Timeout time.Duration `param:"timeout"`
	// Params are the TLS options; Hostname defaults to Host.
	ssl.Params
	// Hook, if set, sees the (plaintext) data read from the server.
	Hook loop.Hook
	// Getenv reads HTTP_PROXY; nil means os.Getenv.
	Getenv func(string) string

	once sync.Once
	err  error
	tls  *ssl.Out
}

// Validate implements connectors.Validator: the tunnel's parameters, then
// the TLS options, each error naming its key.
func (c *Out) Validate() error {
	c.once.Do(func() {
		tunnel := &connect.Out{Host: c.Host, Port: c.Port, ProxyHost: c.ProxyHost, ProxyPort: c.ProxyPort,
			ProxyUser: c.ProxyUser, ProxyPass: c.ProxyPass, ProxyAgent: c.ProxyAgent, Timeout: c.Timeout,
			HeaderLimit: c.HeaderLimit, Hook: c.Hook, Getenv: c.Getenv}
		if c.err = tunnel.Validate(); c.err != nil {
			return
		}
		c.tls = &ssl.Out{Host: c.Host, Port: c.Port, Timeout: c.Timeout, Params: c.Params,
			Via: tunnel, Name: "connect_ssl"}
		c.err = c.tls.Validate()
	})
	return c.err
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
