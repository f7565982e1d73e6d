package connect

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

// DefaultTimeout bounds a whole tunnel set-up (TCP connect to the web proxy
// and the CONNECT exchange) when Out.Timeout is 0.
const DefaultTimeout = 10 * time.Second

func init() {
	connectors.Register("connect", func(side connectors.Side) any {
		if side == connectors.SideOut {
			return &Out{}
		}
		return &In{}
	})
}

// Out reaches Host:Port through a web proxy's CONNECT method, with
// Net::Proxy's parameter names. Use it through a pointer; it may serve
// several loops at once.
type Out struct {
	// Host and Port name the server behind the web proxy; empty means the
	// destination the client asked its own in connector for (socks5 or
	// connect in), chaining proxies.
	Host string `param:"host"`
	Port int    `param:"port,port"`
	// ProxyHost and ProxyPort name the web proxy; without ProxyHost,
	// HTTP_PROXY (or http_proxy) is used, unless NO_PROXY (or no_proxy)
	// exempts Host (see Exempt): then Open connects to it directly.
	// ProxyPort 0 means 8080.
	ProxyHost string `param:"proxy_host"`
	ProxyPort int    `param:"proxy_port,port"`
	// ProxyUser and ProxyPass, when ProxyUser is set, are sent as Basic
	// credentials; they override any found in HTTP_PROXY.
	ProxyUser string `param:"proxy_user"`
	ProxyPass string `param:"proxy_pass"`
	// ProxyAgent, when set, is sent as User-Agent.
	ProxyAgent string `param:"proxy_agent"`
	// Timeout bounds the whole set-up, however slowly the proxy trickles
	// its reply; 0 means DefaultTimeout.
	Timeout time.Duration `param:"timeout"`
	// HeaderLimit bounds the proxy's reply headers; 0 means
	// DefaultHeaderLimit.
	HeaderLimit int `param:"header_limit"`
	// Hook, if set, sees the data read from the server, including the bytes
	// that came with the proxy's reply.
	Hook loop.Hook
	// Getenv reads HTTP_PROXY; nil means os.Getenv.
	Getenv func(string) string
	// Send writes a PROXY protocol header to the server (through the
	// tunnel) first, if configured.
	proxyproto.Send

	valid   connectors.Validation
	proxy   WebProxy
	direct  bool // NO_PROXY exempts Host from the environment's proxy
	request []byte
}

// Validate checks the parameters and settles the web proxy, once: an
// error names the parameter at fault. Open calls it too, for Go programs
// that build an Out by hand.
func (c *Out) Validate() error {
	return c.valid.Run(c.prepare)
}

func (c *Out) prepare() error {
	if c.ProxyHost != "" {
		c.proxy = WebProxy{Host: c.ProxyHost, Port: c.ProxyPort}
		if c.proxy.Port == 0 {
			c.proxy.Port = DefaultProxyPort
		}
	} else {
		getenv := c.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		w, ok, err := ProxyFromEnv(getenv)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("proxy_host parameter is required (or set HTTP_PROXY)")
		}
		c.proxy = w
		c.direct = Exempt(getenv, c.Host, c.Port)
	}
	if c.ProxyUser != "" {
		c.proxy.User, c.proxy.Pass = c.ProxyUser, c.ProxyPass
	}
	if c.Timeout < 0 || c.HeaderLimit < 0 {
		return errors.New("timeout and header_limit cannot be negative")
	}
	if err := connectors.CheckTarget(c.Host, c.Port); err != nil {
		return err
	}
	if c.Host == "" {
		return c.Send.Validate() // the request is made for each client
	}
	req, err := c.requestFor(c.Host, c.Port)
	c.request = req
	if err != nil {
		return err
	}
	return c.Send.Validate()
}

// requestFor makes the CONNECT request for host:port.
func (c *Out) requestFor(host string, port int) ([]byte, error) {
	req := Request{Host: host, Port: port, Agent: c.ProxyAgent, User: c.proxy.User, Pass: c.proxy.Pass}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return req.AppendTo(nil), nil
}

// Proxy returns the web proxy in use, once Validate succeeded.
func (c *Out) Proxy() WebProxy { return c.proxy }

// Open implements connectors.Out: it connects to the web proxy and runs
// the CONNECT exchange on the loop, then hands the pair to h.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, fmt.Errorf("'out' connector (connect): %w", err))
		return
	}
	if c.direct {
		c.openDirect(l, client, c.Send.Wrap(h))
		return
	}
	host, port, err := connectors.Target(client, c.Host, c.Port)
	req := c.request
	if req == nil && err == nil {
		req, err = c.requestFor(host, port)
	}
	if err != nil {
		h.Failed(l, client, err)
		return
	}
	hs := &handshake{out: c, l: l, client: client, h: c.Send.Wrap(h), req: req,
		target: Request{Host: host, Port: port}.Target()}
	timeout := c.timeout()
	start := time.Now()
	l.Dial(c.proxy.Host, c.proxy.Port, timeout, func(s *loop.Socket, err error) {
		if err != nil {
			hs.fail(nil, err)
			return
		}
		hs.start(s, timeout-time.Since(start))
	})
}

// openDirect connects to the server itself, as tcp's out does, for a
// target NO_PROXY exempts.
func (c *Out) openDirect(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	l.Dial(c.Host, c.Port, c.timeout(), func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, fmt.Errorf("'out' connector (connect), direct by NO_PROXY: %w", err))
			return
		}
		server.Connector, server.Hook = c, c.Hook
		h.Connected(l, client, server)
	})
}

func (c *Out) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}
