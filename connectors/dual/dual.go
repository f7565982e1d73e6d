// Package dual is Net::Proxy's dual connector: one port, two services. A
// client that speaks within Timeout goes to ClientFirst (an HTTPS server,
// say); a silent one goes to ServerFirst (an SSH server, whose banner comes
// first) when the timeout expires:
//
//	p := nproxy.New(&dual.In{
//		Port:        443,
//		Timeout:     time.Second,
//		ServerFirst: &tcp.Out{Host: "localhost", Port: 22},
//		ClientFirst: &tcp.Out{Host: "localhost", Port: 8443},
//		Routes:      []dual.Route{{Probe: dual.SSH{}, Out: &tcp.Out{Host: "localhost", Port: 22}}},
//	}, dummy.Connector{})
//
// Unlike Net::Proxy 0.12, which waited inside accept and froze every other
// connection for up to the timeout, each client waits on a timer of its own.
//
// Beyond Net::Proxy, content probes in the manner of sslh route a client by
// its first bytes (SSH, TLS with SNI and ALPN patterns, HTTP with Host
// patterns, a regular expression): the first probe in order that matches
// picks the out connector. The bytes read while deciding are the first bytes
// the chosen server receives, and the connector's hook sees them.
//
// Its type name is "dual"; probes are a list of maps with a "type" and an
// "out" (a connector, or "server_first"/"client_first"):
//
//	in: {type: dual, port: 443, timeout: 0.5,
//	     server_first: {type: tcp, host: localhost, port: 22},
//	     client_first: {type: tcp, host: localhost, port: 8443},
//	     probes: [{type: tls, sni: ["*.example.com"], out: {type: tcp, host: localhost, port: 9443}},
//	              {type: ssh, out: server_first}]}
//	out: {type: dummy}
package dual

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

func init() {
	connectors.Register("dual", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return nil // Net::Proxy's N/A: dual only listens
	})
}

// PicksServer implements connectors.Router: the proxy's out is dummy.
func (*In) PicksServer() {}

// DefaultTimeout is how long a client may stay silent before it is taken
// for a server-first client, as in Net::Proxy.
const DefaultTimeout = time.Second

// In listens on Host:Port and sends each client to one of its out
// connectors. The proxy's out connector must be dummy.
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// Timeout is how long a client may stay silent before it goes to
	// ServerFirst; 0 means DefaultTimeout.
	Timeout time.Duration `param:"timeout"`
	// ServerFirst serves the clients that say nothing before the timeout.
	ServerFirst connectors.Out `param:"server_first,required"`
	// ClientFirst serves the clients that speak first and that no probe
	// claims, including those still undecided at the deadline or after
	// MaxProbeBytes bytes.
	ClientFirst connectors.Out `param:"client_first,required"`
	// Routes are the probes, tried in order on the bytes a client sends.
	Routes []Route
	// MaxProbeBytes bounds the bytes read while the probes decide; 0 means
	// DefaultMaxProbeBytes.
	MaxProbeBytes int `param:"max_probe_bytes"`
	// Hook, if set, sees the data read from clients, the first bytes included.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept

	// ProbeSpecs are the probes as configured; Validate turns them into Routes.
	ProbeSpecs []map[string]any `param:"probes"`
}

// Route sends the clients that Probe matches to Out.
type Route struct {
	Probe Probe
	Out   connectors.Out
}

// Validate implements connectors.Validator: it builds the configured probes.
func (c *In) Validate() error {
	if err := c.Accept.Validate(); err != nil {
		return err
	}
	if c.MaxProbeBytes < 0 {
		return fmt.Errorf("max_probe_bytes must not be negative, not %d", c.MaxProbeBytes)
	}
	for i, spec := range c.ProbeSpecs {
		r, err := c.buildRoute(i, spec)
		if err != nil {
			return err
		}
		c.Routes = append(c.Routes, r)
	}
	c.ProbeSpecs = nil
	return nil
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if c.ServerFirst == nil || c.ClientFirst == nil {
		return errors.New("dual: 'server_first' and 'client_first' connectors required")
	}
	ls := &listening{in: c, l: l, h: h, timeout: c.Timeout}
	if ls.timeout <= 0 {
		ls.timeout = DefaultTimeout
	}
	for _, r := range c.Routes {
		if r.Probe == nil || r.Out == nil {
			return errors.New("dual: a route needs a probe and an out connector")
		}
		ls.probes.List = append(ls.probes.List, r.Probe)
		ls.routed.probes = append(ls.routed.probes, connectors.RouteCounter(h, "probe "+probeName(r.Probe)))
	}
	ls.routed.serverFirst = connectors.RouteCounter(h, "server_first")
	ls.routed.clientFirst = connectors.RouteCounter(h, "client_first")
	ls.probes.Max = c.MaxProbeBytes
	return c.Accept.Listen(l, c.Host, c.Port, ls.accept)
}

// listening is one In on one loop.
type listening struct {
	in      *In
	l       *loop.Loop
	h       connectors.Handler
	timeout time.Duration
	probes  Probes
	routed  struct { // the decisions for each route, counted for metrics
		serverFirst, clientFirst *atomic.Uint64
		probes                   []*atomic.Uint64
	}
}

func (ls *listening) accept(client *loop.Socket) {
	client.Connector, client.Hook = ls.in, ls.in.Hook
	// Counted at accept time, as Net::Proxy does; the dummy out opens nothing.
	ls.h.Accepted(ls.l, client)
	if client.Closed() {
		return
	}
	d := &deciding{ls: ls, client: client}
	client.SetHandler(d)
	ls.l.WatchReader(client)
	client.SetTimer(ls.timeout, d.expire)
}

// deciding is a client whose route is not chosen yet. It holds the bytes
// read so far only while the probes need more of them.
type deciding struct {
	ls      *listening
	client  *loop.Socket
	got     []byte
	decided bool // routed: the socket is the out connector's now
}

// readSize is the most read at once while deciding without probes: the
// rest of what the client sent is the relay's to move.
const readSize = 16 << 10

var chunks = sync.Pool{New: func() any { return new([DefaultMaxProbeBytes]byte) }}

// Readable reads what the client sent and lets the probes judge it; with no
// probes, any byte decides for ClientFirst.
func (d *deciding) Readable(s *loop.Socket) {
	chunk := chunks.Get().(*[DefaultMaxProbeBytes]byte)
	defer chunks.Put(chunk)
	room := readSize
	if len(d.ls.probes.List) > 0 {
		room = min(d.ls.probes.limit()-len(d.got), len(chunk))
	}
	n, err := s.Read(chunk[:room])
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		d.ls.l.Logger().Log(context.Background(), loop.LevelInfo, "dual: client error while deciding", "client", s.Nick(), "err", err)
		d.ls.l.Close(s)
		return
	case n == 0 && len(d.got) == 0:
		// Gone without a word: no server is worth opening for it.
		d.ls.l.Logger().Log(context.Background(), loop.LevelInfo, "dual: client closed before sending anything", "client", s.Nick())
		d.ls.l.Close(s)
		return
	case n == 0:
		d.stash(d.got)
		d.route(d.ls.in.ClientFirst, d.ls.routed.clientFirst, "client_first (end of data before the probes decided)")
		return
	}
	data := chunk[:n]
	if len(d.got) > 0 {
		d.got = append(d.got, data...)
		data = d.got
	}
	i, v := d.ls.probes.Check(data)
	switch v {
	case Match:
		d.stash(data)
		d.route(d.ls.in.Routes[i].Out, d.ls.routed.probes[i], "probe "+probeName(d.ls.in.Routes[i].Probe))
	case NoMatch:
		d.stash(data)
		d.route(d.ls.in.ClientFirst, d.ls.routed.clientFirst, "client_first")
	default:
		if len(d.got) == 0 {
			d.got = append([]byte(nil), data...)
		}
	}
}

// Writable is never called: a deciding client is only read.
func (d *deciding) Writable(*loop.Socket) {}

// expire is the deadline: a client that said nothing goes to ServerFirst; one
// that spoke but left the probes undecided goes to ClientFirst. The loop runs
// timers after a pass's events, late when it is busy: a client accepted in
// that pass was never polled, so what it sent in time is read first.
func (d *deciding) expire() {
	if len(d.got) == 0 {
		d.Readable(d.client)
		if d.decided || d.client.Closed() {
			return
		}
	}
	if len(d.got) == 0 {
		d.route(d.ls.in.ServerFirst, d.ls.routed.serverFirst, "server_first (timeout)")
		return
	}
	d.stash(d.got)
	d.route(d.ls.in.ClientFirst, d.ls.routed.clientFirst, "client_first (probes undecided at the timeout)")
}

// stash hands the bytes read while deciding to the relay, through the hook.
func (d *deciding) stash(data []byte) {
	d.client.Stash(data)
	d.got = nil
}

// route stops deciding and opens the chosen server. The client is parked
// without a handler meanwhile: the loop still closes it if it hangs up.
func (d *deciding) route(out connectors.Out, decisions *atomic.Uint64, why string) {
	decisions.Add(1)
	s, l := d.client, d.ls.l
	d.decided = true
	s.StopTimer()
	l.UnwatchReader(s)
	s.SetHandler(nil)
	if log := l.Logger(); log.Enabled(context.Background(), loop.LevelDebug) {
		log.Debug("dual: " + s.Nick() + " goes to " + why)
	}
	out.Open(l, s, d.ls.h)
}
