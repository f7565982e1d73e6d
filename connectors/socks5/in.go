package socks5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/access"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("socks5", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return &Out{}
	})
}

// DefaultTimeout bounds a negotiation (in) or a whole set-up through an
// upstream server (out) when Timeout is 0.
const DefaultTimeout = 10 * time.Second

// negotiationLimit bounds the bytes a client may have sent and nproxy not
// yet used: the largest message is RFC 1929's, 3+255+255 bytes.
const negotiationLimit = 600

// In is a SOCKS5 server on Host:Port: each client negotiates, names a
// destination, and the proxy's out connector takes it there (a tcp out
// without host: straight; a socks5 or connect out: through another proxy).
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// Control holds the users and the allow rules (default "*:*").
	access.Control
	// Timeout bounds the negotiation; DefaultTimeout when 0.
	Timeout time.Duration `param:"timeout"`
	// Hook, if set, sees the data read from clients after the negotiation.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept
	// UDPTimeout ends a UDP association that long without a datagram
	// either way; DefaultUDPTimeout when 0.
	UDPTimeout time.Duration `param:"udp_timeout"`
	// MaxAssociations bounds the UDP associations open at once, on all
	// loops; DefaultMaxAssociations when 0.
	MaxAssociations int `param:"max_associations"`
	// MaxDestinations bounds the destinations (addresses, and name:port
	// pairs) of one UDP association; DefaultMaxDestinations when 0.
	MaxDestinations int `param:"max_destinations"`

	valid connectors.Validation
	udp   UDPStats
}

// Validate implements connectors.Validator: users and rules load.
func (c *In) Validate() error {
	return c.valid.Run(c.Accept.Validate, c.checkLimits, func() error { return c.Load("*:*") })
}

func (c *In) checkLimits() error {
	if c.MaxAssociations < 0 || c.MaxDestinations < 0 {
		return errors.New("max_associations and max_destinations must not be negative")
	}
	return nil
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	udp := &udpLoop{in: c}
	// A client waits for its reply before it sends anything more: Hold.
	pre := &connectors.Preamble{Limit: negotiationLimit, Timeout: c.timeout(), Hold: true,
		Step: c.step,
		Done: func(client *loop.Socket) {
			if ss := client.State.(*session); ss.associate {
				udp.open(client, ss.from)
				return
			}
			h.Accepted(l, client)
		},
		Fail: c.fail,
	}
	return c.Accept.Listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		client.State = &session{in: c}
		pre.Start(client)
	})
}

func (c *In) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *In) udpTimeout() time.Duration {
	if c.UDPTimeout <= 0 {
		return DefaultUDPTimeout
	}
	return c.UDPTimeout
}

func (c *In) maxAssociations() int {
	if c.MaxAssociations <= 0 {
		return DefaultMaxAssociations
	}
	return c.MaxAssociations
}

func (c *In) maxDestinations() int {
	if c.MaxDestinations <= 0 {
		return DefaultMaxDestinations
	}
	return c.MaxDestinations
}

func (c *In) fail(client *loop.Socket, err error) {
	var re *replyError
	if errors.As(err, &re) {
		writeReply(client, re.code, netip.AddrPort{})
	}
	client.Loop().Logger().Error(fmt.Sprintf("socks5 in: client %s: %v", client.Nick(), err))
	client.Loop().Close(client)
}

// step advances client's negotiation by one message.
func (c *In) step(client *loop.Socket, data []byte) (int, bool, error) {
	ss := client.State.(*session)
	switch ss.state {
	case greeting:
		return ss.greet(client, data)
	case authenticating:
		return ss.authenticate(client, data)
	}
	return ss.request(client, data)
}

// session is one client's negotiation, then its pending answer.
type session struct {
	in        *In
	state     int
	associate bool   // the request is UDP ASSOCIATE
	from      uint16 // its DST.PORT: the port the client sends datagrams from, 0 if not known
}

const (
	greeting = iota
	authenticating
	requesting
)

func (ss *session) greet(client *loop.Socket, data []byte) (int, bool, error) {
	methods, n, err := parseGreeting(data)
	if n == 0 || err != nil {
		return 0, false, err
	}
	want, next := byte(methodNone), requesting
	if ss.in.NeedsAuth() {
		want, next = methodPassword, authenticating
	}
	for _, m := range methods {
		if m == want {
			ss.state = next
			return n, false, connectors.WriteAll(client, []byte{version, want})
		}
	}
	connectors.WriteAll(client, []byte{version, methodRefused})
	return 0, false, fmt.Errorf("no acceptable authentication method among %d offered", len(methods))
}

func (ss *session) authenticate(client *loop.Socket, data []byte) (int, bool, error) {
	user, pass, n, err := parseAuth(data)
	if n == 0 || err != nil {
		return 0, false, err
	}
	if !ss.in.Authenticate(user, pass) {
		connectors.WriteAll(client, []byte{authVersion, 1})
		return 0, false, fmt.Errorf("wrong username or password for %q", user)
	}
	ss.state = requesting
	return n, false, connectors.WriteAll(client, []byte{authVersion, 0})
}

func (ss *session) request(client *loop.Socket, data []byte) (int, bool, error) {
	req, n, err := parseRequest(data)
	if n == 0 || err != nil {
		return 0, false, err
	}
	switch {
	case req.cmd == cmdAssociate:
		ss.associate, ss.from = true, uint16(req.port)
		return n, true, nil
	case req.cmd != cmdConnect:
		return 0, false, &replyError{repCmdNotSupported, fmt.Sprintf("command %d not supported", req.cmd)}
	case !ss.in.Permit(req.host, req.port):
		return 0, false, &replyError{repNotAllowed, fmt.Sprintf("%s port %d not allowed", req.host, req.port)}
	}
	client.SetDestination(req.host, req.port)
	if log := client.Loop().Logger(); log.Enabled(context.Background(), loop.LevelDebug) {
		log.Debug(fmt.Sprintf("socks5 in: %s asks for %s port %d", client.Nick(), req.host, req.port))
	}
	return n, true, nil
}

// Answer implements connectors.Answerer: the client learns the outcome,
// once. The session is dropped with it: a relayed client keeps no state of
// its negotiation (an idle connection's bytes), and owes no second answer.
func (ss *session) Answer(client, server *loop.Socket, err error) error {
	client.State = nil
	if err != nil {
		return writeReply(client, replyCode(err), netip.AddrPort{})
	}
	bound, err := boundAddr(server.Fd())
	if err != nil {
		bound = server.LocalAddr() // not an IP socket of its own: a virtual one
	}
	return writeReply(client, repSucceeded, bound)
}

// writeReply sends a reply to the client, built in one small buffer (no
// address string to format and parse again).
func writeReply(client *loop.Socket, code byte, bound netip.AddrPort) error {
	var b [maxReply]byte
	return connectors.WriteAll(client, appendReply(b[:0], code, bound))
}

// replyCode maps why the server could not be reached to RFC 1928's codes.
func replyCode(err error) byte {
	var dnsErr *net.DNSError
	var re *replyError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.Is(err, syscall.ECONNREFUSED):
		return repRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded):
		return repHostUnreachable
	case errors.As(err, &dnsErr):
		return repHostUnreachable
	}
	return repFailure
}
