package socks5

import (
	"errors"
	"fmt"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

// DefaultProxyPort is the upstream SOCKS5 server's port when ProxyPort is 0.
const DefaultProxyPort = 1080

// replyLimit bounds an upstream server's reply: 4+1+255+2 bytes.
const replyLimit = 262

// Out reaches Host:Port through an upstream SOCKS5 server, without blocking
// the loop. Without Host, it asks for the destination the client named to
// its own in connector (socks5 or connect in), chaining proxies.
type Out struct {
	// Host and Port name the server behind the upstream proxy; a name is
	// sent unresolved, for the upstream to resolve. Empty means the
	// client's requested destination.
	Host string `param:"host"`
	Port int    `param:"port,port"`
	// ProxyHost and ProxyPort name the upstream SOCKS5 server; ProxyPort 0
	// means DefaultProxyPort.
	ProxyHost string `param:"proxy_host,required"`
	ProxyPort int    `param:"proxy_port,port"`
	// ProxyUser and ProxyPass, when ProxyUser is set, authenticate with
	// RFC 1929 if the server asks.
	ProxyUser string `param:"proxy_user"`
	ProxyPass string `param:"proxy_pass"`
	// Timeout bounds the whole set-up (connect and negotiation);
	// DefaultTimeout when 0.
	Timeout time.Duration `param:"timeout"`
	// Hook, if set, sees the data read from the server.
	Hook loop.Hook
	// Send writes a PROXY protocol header to the server (through the
	// tunnel) first, if configured.
	proxyproto.Send

	valid connectors.Validation
	pre   *connectors.Preamble
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	return c.valid.Run(func() error {
		c.pre = &connectors.Preamble{Limit: replyLimit, Timeout: c.timeout(), Step: c.step}
		return connectors.CheckTarget(c.Host, c.Port)
	}, c.checkCredentials, c.Send.Validate)
}

func (c *Out) checkCredentials() error {
	if len(c.ProxyUser) > 255 || len(c.ProxyPass) > 255 {
		return errors.New("proxy_user and proxy_pass are at most 255 bytes")
	}
	return nil
}

func (c *Out) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Out) proxyPort() int {
	if c.ProxyPort > 0 {
		return c.ProxyPort
	}
	return DefaultProxyPort
}

// upstream is one negotiation with the upstream server.
type upstream struct {
	c      *Out
	client *loop.Socket
	h      connectors.Handler
	host   string
	port   int
	state  int
}

const (
	choosing = iota
	authenticated
	connecting
)

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, fmt.Errorf("'out' connector (socks5): %w", err))
		return
	}
	host, port, err := connectors.Target(client, c.Host, c.Port)
	if err != nil {
		h.Failed(l, client, err)
		return
	}
	up := &upstream{c: c, client: client, h: c.Send.Wrap(h), host: host, port: port}
	start := time.Now()
	l.Dial(c.ProxyHost, c.proxyPort(), c.timeout(), func(server *loop.Socket, err error) {
		if err != nil {
			up.failed(nil, err)
			return
		}
		server.Connector, server.Hook, server.State = c, c.Hook, up
		methods := []byte{version, 1, methodNone}
		if c.ProxyUser != "" {
			methods = []byte{version, 2, methodNone, methodPassword}
		}
		if err := connectors.WriteAll(server, methods); err != nil {
			up.failed(server, err)
			return
		}
		pre := *c.pre
		pre.Timeout -= time.Since(start)
		pre.Done = up.done
		pre.Fail = up.failed
		pre.Start(server)
	})
}

func (c *Out) step(server *loop.Socket, data []byte) (int, bool, error) {
	return server.State.(*upstream).step(server, data)
}

func (up *upstream) step(server *loop.Socket, data []byte) (int, bool, error) {
	switch up.state {
	case choosing:
		if len(data) < 2 {
			return 0, false, versionFirst(data, version)
		}
		if data[0] != version {
			return 0, false, errVersion
		}
		return 2, false, up.chosen(server, data[1])
	case authenticated:
		if len(data) < 2 {
			return 0, false, nil
		}
		if data[1] != 0 {
			return 0, false, errors.New("username/password refused")
		}
		return 2, false, up.request(server)
	}
	code, n, err := parseReply(data)
	if n == 0 || err != nil {
		return 0, false, err
	}
	if code != repSucceeded {
		// A replyError: a socks5 in chained before passes the code on.
		return 0, false, &replyError{code, fmt.Sprintf("refused with reply code %d (%s)", code, replyText(code))}
	}
	return n, true, nil
}

// chosen answers the method the server picked.
func (up *upstream) chosen(server *loop.Socket, method byte) error {
	switch {
	case method == methodNone:
		return up.request(server)
	case method == methodPassword && up.c.ProxyUser != "":
		up.state = authenticated
		msg := append([]byte{authVersion, byte(len(up.c.ProxyUser))}, up.c.ProxyUser...)
		msg = append(append(msg, byte(len(up.c.ProxyPass))), up.c.ProxyPass...)
		return connectors.WriteAll(server, msg)
	}
	return fmt.Errorf("no acceptable authentication method (server chose %#x)", method)
}

func (up *upstream) request(server *loop.Socket) error {
	up.state = connecting
	msg, err := appendAddr([]byte{version, cmdConnect, 0}, up.host, up.port)
	if err != nil {
		return err
	}
	return connectors.WriteAll(server, msg)
}

func (up *upstream) done(server *loop.Socket) {
	server.State = nil
	up.h.Connected(server.Loop(), up.client, server)
}

func (up *upstream) failed(server *loop.Socket, err error) {
	l := up.client.Loop()
	if server != nil {
		l.Close(server)
	}
	up.h.Failed(l, up.client, fmt.Errorf("socks5 out to %s port %d via %s port %d: %w", up.host, up.port, up.c.ProxyHost, up.c.proxyPort(), err))
}

func replyText(code byte) string {
	switch code {
	case repFailure:
		return "general failure"
	case repNotAllowed:
		return "not allowed by ruleset"
	case repNetUnreachable:
		return "network unreachable"
	case repHostUnreachable:
		return "host unreachable"
	case repRefused:
		return "connection refused"
	case repTTLExpired:
		return "TTL expired"
	case repCmdNotSupported:
		return "command not supported"
	case repAtypNotSupported:
		return "address type not supported"
	}
	return "unknown"
}
