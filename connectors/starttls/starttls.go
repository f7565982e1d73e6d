// Package starttls is the starttls connector of Net::Proxy's wishlist, done
// the way stunnel's protocol option does it on the server side: nproxy
// listens in clear text, speaks the opening of SMTP, IMAP or POP3 to the
// client itself until the client asks for STARTTLS (STLS in POP3), then
// upgrades the client's socket to TLS and only then relays it, in plaintext,
// to the out connector's server:
//
//	p := nproxy.New(&starttls.In{Port: 587, Protocol: "smtp",
//		Params: ssl.Params{CertFile: "cert.pem", KeyFile: "key.pem"}},
//		&tcp.Out{Host: "localhost", Port: 25})
//
// Its type name is "starttls":
//
//	--in type=starttls,port=587,protocol=smtp,SSL_cert_file=cert.pem,SSL_key_file=key.pem
//
// Before TLS the client gets a greeting, its capability commands are
// answered with STARTTLS listed (EHLO, CAPABILITY, CAPA), NOOP and QUIT (or
// LOGOUT) work, and any other command gets the protocol's "must issue
// STARTTLS first" error. A command line is at most 1 KiB, at most 10
// commands are answered, and the whole clear-text phase must end within
// Timeout; past any of these limits the client gets the protocol's closing
// line and is closed, with a log line. No byte after the STARTTLS command
// is read in clear: the client's TLS handshake (even sent at once, without
// waiting for the answer) goes to TLS, never to the command parser.
//
// The real server's greeting: the server greets when nproxy connects, after
// the handshake, but the client already had nproxy's greeting and (RFC 3207,
// 3501, 2595) expects none after TLS. So the server's greeting is checked
// (220 for SMTP, "* OK" for IMAP, "+OK" for POP3) and dropped, as stunnel
// does; the client's next command (an SMTP client's second EHLO) goes to
// the server. Until the greeting has come, the client's plaintext is held
// back, so that the server never hears a command before it greeted (which
// SMTP servers punish as pipelining before the greeting). A server that does
// not greet within Timeout of the handshake's end, or refuses (554, "* BYE",
// "-ERR"), closes the connection with a log line.
//
// As with the ssl connector, a client counts as a connection of the proxy
// (and its server is reached) only once its TLS handshake succeeded: one
// that leaves or is refused in clear text is logged, not counted.
package starttls

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("starttls", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{Params: ssl.Params{VerifyMode: -1}}
		}
		return nil
	})
}

// DefaultTimeout bounds the clear-text phase, the TLS handshake and the
// wait for the server's greeting when In.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// In listens in clear text on Host:Port, answers each client in Protocol
// until it asks for STARTTLS, and hands it to the proxy once its TLS
// handshake succeeded.
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// Protocol is what the client speaks: smtp, imap or pop3.
	Protocol string `param:"protocol,required"`
	// Timeout bounds, separately, the clear-text phase (from the accept;
	// bytes trickled in do not extend it), the TLS handshake, and the wait
	// for the server's greeting; DefaultTimeout when 0.
	Timeout time.Duration `param:"timeout"`
	// Params are the TLS options; the certificate and key are required.
	ssl.Params
	// Hook, if set, sees the plaintext read from clients once TLS is up.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept

	valid connectors.Validation
	d     *dialect
	cfg   *tls.Config
}

// Validate implements connectors.Validator: the protocol is known, the
// certificate and key load.
func (c *In) Validate() error {
	return c.valid.Run(c.Accept.Validate, func() (err error) {
		if c.d = dialects[c.Protocol]; c.d == nil {
			return fmt.Errorf("protocol must be smtp, imap or pop3, not %q", c.Protocol)
		}
		c.cfg, err = c.ServerConfig()
		return err
	})
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return c.Accept.Listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector = c
		startSession(c, h, client)
	})
}

func (c *In) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// secure runs the TLS handshake on a client whose clear-text phase is over
// and, once it succeeded, gates its relay on the server's greeting and hands
// it to the proxy.
func (c *In) secure(l *loop.Loop, h connectors.Handler, client *loop.Socket) {
	ssl.Handshake(client, c.cfg, true, c.timeout(), func(err error) {
		if err != nil {
			l.Logger().Error(fmt.Sprintf("starttls in: client %s: TLS handshake: %v", client.Nick(), err))
			l.Close(client)
			return
		}
		if err := newGate(c, client); err != nil {
			l.Logger().Error(fmt.Sprintf("starttls in: client %s: %v", client.Nick(), err))
			l.Close(client)
			return
		}
		h.Accepted(l, client)
	})
}
