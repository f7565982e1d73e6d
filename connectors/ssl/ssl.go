package ssl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

// The ssl connector is Net::Proxy's: TLS on the client side (in) or the
// server side (out), possibly starting in clear text and upgraded later by a
// hook (Upgrade). Its type name is "ssl":
//
//	--in type=ssl,port=443,SSL_cert_file=cert.pem,SSL_key_file=key.pem
//	--out type=ssl,host=example.org,port=443
func init() {
	connectors.Register("ssl", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{Params: Params{VerifyMode: -1}}
		}
		return &Out{Params: Params{VerifyMode: -1}}
	})
}

// In accepts TLS clients on Host:Port: each is relayed once its handshake
// succeeded (or at once, in clear, with StartCleartext).
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// StartCleartext relays in clear until a hook calls Upgrade.
	StartCleartext bool `param:"start_cleartext"`
	// Timeout bounds each handshake; DefaultHandshakeTimeout when 0.
	Timeout time.Duration `param:"timeout"`
	// Params are the TLS options; the certificate and key are required.
	Params
	// NoTickets (SSL_no_tickets) turns session resumption off: clients
	// get no session tickets (TLS 1.3 NewSessionTicket, TLS 1.2's
	// extension), so every handshake is a full one. Resumption is on by
	// default: a returning client skips the certificate and its signature,
	// the costliest part of a full handshake for the relay. The tickets'
	// keys are crypto/tls's own, made at start-up and rotated daily, shared
	// by every loop; a restart or a changed in side starts afresh.
	NoTickets bool `param:"SSL_no_tickets"`
	// Hook, if set, sees the (plaintext) data read from clients.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept

	valid connectors.Validation
	cfg   *tls.Config
}

// Validate implements connectors.Validator: the certificate and key load.
func (c *In) Validate() error {
	return c.valid.Run(c.Accept.Validate, func() (err error) {
		if c.cfg, err = c.ServerConfig(); err == nil {
			c.cfg.SessionTicketsDisabled = c.NoTickets
		}
		return err
	})
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return c.Accept.Listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		if c.StartCleartext {
			client.Raw = false // the bytes must reach the hook before they go on
			h.Accepted(l, client)
			return
		}
		Handshake(client, c.cfg, true, c.Timeout, func(err error) {
			if err != nil {
				l.Logger().Error(fmt.Sprintf("ssl in: client %s: %v", client.Nick(), err))
				connectors.HandshakeFailed(h, connectors.HandshakeTLS)
				l.Close(client)
				return
			}
			h.Accepted(l, client)
		})
	})
}

// Out connects to Host:Port and runs a TLS handshake (unless
// StartCleartext) before the relay starts. The server's certificate is
// verified unless VerifyMode is 0.
type Out struct {
	// Host is the server's address or name; names are resolved off the loop.
	// It is also the name verified, unless Hostname is set.
	Host string `param:"host,required"`
	// Port is the server's TCP port.
	Port int `param:"port,required,port"`
	// StartCleartext relays in clear until a hook calls Upgrade.
	StartCleartext bool `param:"start_cleartext"`
	// Timeout bounds the connect and, separately, the handshake; 0 means
	// their defaults.
	Timeout time.Duration `param:"timeout"`
	// Params are the TLS options; Hostname defaults to Host.
	Params
	// Hook, if set, sees the (plaintext) data read from the server.
	Hook loop.Hook
	// Via, if set, opens the connection to the server in place of a direct
	// connect, and the handshake runs over it: connect_ssl passes a connect
	// connector, whose tunnel through a web proxy reaches the server. The
	// connection keeps the Connector and Hook that Via gave it.
	Via connectors.Out
	// Name is how errors and notices call the connector, as in "ssl out to
	// host port 443"; "ssl out" when empty.
	Name string
	// Send writes a PROXY protocol header to the server, in clear before
	// TLS, if configured.
	proxyproto.Send

	valid connectors.Validation
	cfg   *tls.Config
	warn  sync.Once
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	return c.valid.Run(c.Send.Validate, func() (err error) {
		c.cfg, err = c.params().ClientConfig()
		return err
	})
}

// Config returns the TLS configuration of c's handshakes, which Validate
// builds once.
func (c *Out) Config() (*tls.Config, error) {
	err := c.Validate()
	return c.cfg, err
}

func (c *Out) params() Params {
	p := c.Params
	if p.Hostname == "" {
		p.Hostname = c.Host
	}
	return p
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, err)
		return
	}
	if c.params().Insecure() {
		c.warn.Do(func() {
			l.Logger().Log(context.Background(), loop.LevelNotice, c.where()+": SSL_verify_mode=0, the server's certificate is not verified")
		})
	}
	if c.Via != nil {
		c.Via.Open(l, client, via{c, h})
		return
	}
	l.Dial(c.Host, c.Port, c.Timeout, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		server.Connector, server.Hook = c, c.Hook
		if c.StartCleartext {
			server.Raw = false
			c.Send.Wrap(h).Connected(l, client, server)
			return
		}
		c.handshake(l, client, server, h)
	})
}

// handshake sends the PROXY header if configured, runs the TLS client
// handshake on server, then tells h.
func (c *Out) handshake(l *loop.Loop, client, server *loop.Socket, h connectors.Handler) {
	if err := c.WriteHeader(client, server); err != nil {
		l.Close(server)
		h.Failed(l, client, err)
		return
	}
	Handshake(server, c.cfg, false, c.Timeout, func(err error) {
		if err != nil {
			l.Close(server)
			connectors.HandshakeFailed(h, connectors.HandshakeTLS)
			h.Failed(l, client, fmt.Errorf("%s: %w", c.where(), err))
			return
		}
		// wake, which called done, goes on to tell the relay what the
		// engine already holds.
		h.Connected(l, client, server)
	})
}

func (c *Out) where() string {
	name := c.Name
	if name == "" {
		name = "ssl out"
	}
	return fmt.Sprintf("%s to %s port %d", name, c.Host, c.Port)
}

// via receives the connection that Out.Via opened and runs the handshake
// over it before telling the proxy.
type via struct {
	c *Out
	connectors.Handler
}

// Connected starts the handshake on the connection Via opened.
func (v via) Connected(l *loop.Loop, client, server *loop.Socket) {
	v.c.handshake(l, client, server, v.Handler)
}

// Handshake puts s, a connected socket of l with no handler, under TLS (the
// server side if server) and runs the handshake on the loop, bounded by
// timeout (DefaultHandshakeTimeout if 0). done runs on the loop when it
// ends, with nil or the failure; s then has no handler and no interest, as
// connectors hand sockets to the proxy, and reads and writes plaintext.
// On failure s is left open for done to close. Connectors that tunnel
// (connect_ssl) use it once their own exchange is over.
func Handshake(s *loop.Socket, cfg *tls.Config, server bool, timeout time.Duration, done func(error)) {
	newConn(s, cfg, server, tlsengine.Options{HandshakeTimeout: timeout}, handshaking, done)
}

// ErrNotSSL is Upgrade's answer for a socket no ssl connector made.
var ErrNotSSL = errors.New("not a socket of an ssl connector")

// Upgrade switches s to TLS, as Net::Proxy's upgrade_SSL: the server side
// for a socket of an ssl In, the client side for one of an ssl Out
// (normally with start_cleartext). It is meant for a hook that has just
// seen the peer ask for it and answered in clear, for instance:
//
//	hook := func(data []byte, s *loop.Socket) []byte {
//		if rest, ok := bytes.CutPrefix(data, []byte("STARTTLS\n")); ok {
//			s.Write([]byte("OK\n"))
//			ssl.Upgrade(s, rest)
//			return nil
//		}
//		return data
//	}
//
// early holds bytes read after the request that belong to TLS already (a
// client that did not wait for the answer); they are not lost. The answer
// written with s.Write goes out in clear, straight to the fd, so it must be
// written while nothing else is pending for s (as in a request-answer
// exchange); whatever the relay holds for s later goes out encrypted.
// Upgrading a socket that is already TLS only logs a notice. The handshake
// runs under the relay: its failure closes the connection like any error.
func Upgrade(s *loop.Socket, early []byte) error {
	if _, ok := s.Transport().(*conn); ok {
		s.Loop().Logger().Log(context.Background(), loop.LevelNotice, "ssl: "+s.Nick()+" is already TLS, not upgraded again")
		return nil
	}
	var c *conn
	switch k := s.Connector.(type) {
	case *In:
		if err := k.Validate(); err != nil {
			return err
		}
		c = newConn(s, k.cfg, true, tlsengine.Options{HandshakeTimeout: k.Timeout}, relaying, nil)
	case *Out:
		if err := k.Validate(); err != nil {
			return err
		}
		c = newConn(s, k.cfg, false, tlsengine.Options{HandshakeTimeout: k.Timeout}, relaying, nil)
	default:
		return ErrNotSSL
	}
	if n := c.e.Feed(early); n < len(early) {
		return fmt.Errorf("ssl: %d early bytes are more than the engine holds", len(early))
	}
	return nil
}
