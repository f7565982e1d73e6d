package httptunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

// DefaultMaxTunnels bounds the tunnels an In serves at once on each loop.
const DefaultMaxTunnels = 256

// In is nproxy as hts: it listens on Host:Port for htc's requests, and
// hands each tunnel to the proxy as a client once both its POST and its
// GET have come.
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// MaxTunnels bounds the tunnels served at once per loop; 0 means
	// DefaultMaxTunnels.
	MaxTunnels int `param:"max_tunnels"`
	// Options are the parameters hts shares with htc.
	Options
	// TLS, if on, makes every connection start with a TLS handshake.
	TLS
	// Hook, if set, sees the data read from tunnels.
	Hook loop.Hook
	// Accept reads a PROXY protocol header at the start of every HTTP
	// connection, if configured (a load balancer in front): its client
	// address is the one requests are paired by, and the tunnel's.
	proxyproto.Accept
}

// Validate implements connectors.Validator.
func (c *In) Validate() error {
	if err := c.Accept.Validate(); err != nil {
		return err
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	_, err := c.config(true, "")
	return err
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	srv := &server{c: c, l: l, h: h, byKey: map[tunnelKey][]*hts{}}
	return c.Accept.Listen(l, c.Host, c.Port, srv.accept)
}

// server routes one loop's HTTP requests to its tunnels: a request goes to
// the oldest tunnel of the same key that waits for one (docs/httptunnel.md).
type server struct {
	c     *In
	l     *loop.Loop
	h     connectors.Handler
	byKey map[tunnelKey][]*hts
	count int
	// early holds GETs that came before their tunnel's POST: through a
	// proxy the GET may overtake the POST's first body byte.
	early map[tunnelKey][]*loop.Socket
	// refused says when a tunnel from an address was last turned down.
	refused map[netip.Addr]time.Time
	seq     uint64 // accepted requests, numbered in order
}

func (srv *server) accept(s *loop.Socket) {
	s.Connector = srv.c
	cfg, _ := srv.c.config(true, "")
	handshake(s, cfg, true, srv.c.timeout(), srv.request, func(err error) {
		srv.l.Logger().Error(fmt.Sprintf("httptunnel in: %v", err))
	})
}

// request reads a request head and routes it.
func (srv *server) request(s *loop.Socket) {
	srv.seq++
	seq := srv.seq
	readHead(s, srv.c.timeout(), bodyNeed, func(s *loop.Socket, head, rest []byte, err error) {
		if err == nil {
			err = srv.route(s, seq, head, rest)
		}
		if err != nil {
			srv.l.Logger().Error(fmt.Sprintf("httptunnel in: request from %s: %v", s.Nick(), err))
			closeWhenSent(s) // an answer may have been written
		}
	})
}

// bodyNeed asks for a POST's first byte, which says whether it opens a
// tunnel.
func bodyNeed(head []byte) int {
	if bytes.HasPrefix(head, []byte("POST ")) || bytes.HasPrefix(head, []byte("PUT ")) {
		return 1
	}
	return 0
}

func (srv *server) route(s *loop.Socket, seq uint64, head, rest []byte) error {
	req, err := parseRequest(head)
	if err != nil {
		return err
	}
	key := tunnelKey{remoteAddr(s), req.tunnel}
	switch req.method {
	case "POST", "PUT":
		if req.contentLength <= 0 {
			return errors.New("POST without a Content-Length")
		}
		switch {
		case rest[0] == opOpen && srv.c.Mux:
			return srv.refuse(key, "a GNU httptunnel client, but this end is mux=1")
		case rest[0] == opMux && !srv.c.Mux:
			return srv.refuse(key, "an nproxy mux client, but this end is not mux=1")
		case rest[0] == opOpen || rest[0] == opMux:
			return srv.open(s, key, req.contentLength, rest)
		}
		if e := srv.find(key, (*hts).wantsRecv); e != nil {
			e.takeRecv(queued{s, seq, req.contentLength, rest})
			return nil
		}
		return errors.New("POST for no tunnel")
	case "GET":
		if req.wsKey != "" {
			if !srv.c.Mux {
				return errors.New("a WebSocket upgrade, but this end is not mux=1")
			}
			return srv.acceptWS(s, req, rest)
		}
		if e := srv.find(key, (*hts).wantsSend); e != nil {
			e.takeSend(s)
			return nil
		}
		return srv.park(s, key)
	}
	return fmt.Errorf("unexpected method %s", req.method)
}

// open starts a tunnel with its first POST; it waits for its GET.
func (srv *server) open(s *loop.Socket, key tunnelKey, length int64, rest []byte) error {
	if max := srv.c.MaxTunnels; srv.count >= max && max > 0 || max == 0 && srv.count >= DefaultMaxTunnels {
		return fmt.Errorf("too many tunnels (%d)", srv.count)
	}
	if key.id == "" {
		srv.supersede(key)
	}
	e := &hts{srv: srv, key: key}
	t, err := newTunnel(srv.l, e, "from "+s.Nick(), &srv.c.Options)
	if err != nil {
		return err
	}
	e.t = t
	t.vs.Connector, t.vs.Hook = srv.c, srv.c.Hook
	// The client's addresses, for logs and send_proxy.
	t.vs.SetRemoteAddr(s.RemoteAddr())
	t.vs.SetLocalAddr(s.LocalAddr())
	t.maxAge = -1 // the client alone ends bodies for their age
	if srv.c.Mux {
		t.maxData = maxFrame // the peer is an nproxy, not GNU
	}
	srv.byKey[key] = append(srv.byKey[key], e)
	srv.count++
	e.waitSend()
	t.attachRecv(s, length, rest)
	if g := srv.unpark(key); g != nil && e.wantsSend() {
		e.takeSend(g)
	}
	return nil
}

// refuse turns a tunnel down, with the GET that may have come for it
// first, so that the client hears it at once.
// A GET that comes just after (htc sends it without waiting) is turned
// down too.
func (srv *server) refuse(key tunnelKey, why string) error {
	if g := srv.unpark(key); g != nil {
		srv.l.Close(g)
	}
	if srv.refused == nil || len(srv.refused) > maxRefused {
		srv.refused = map[netip.Addr]time.Time{}
	}
	srv.refused[key.addr] = time.Now()
	return errors.New(why)
}

// maxRefused bounds the addresses remembered as just refused.
const maxRefused = 1024

// refusedLately is how long a refusal also covers GETs.
const refusedLately = 2 * time.Second

// maxEarly bounds the GETs parked per client address.
const maxEarly = 4

// park keeps a GET for a tunnel whose POST has not come yet, within the
// timeout.
func (srv *server) park(s *loop.Socket, key tunnelKey) error {
	if at, ok := srv.refused[key.addr]; ok && time.Since(at) < refusedLately {
		return errors.New("GET for a refused tunnel")
	}
	if len(srv.early[key]) >= maxEarly {
		return errors.New("GET for no tunnel")
	}
	if srv.early == nil {
		srv.early = map[tunnelKey][]*loop.Socket{}
	}
	srv.early[key] = append(srv.early[key], s)
	s.SetTimer(srv.c.timeout(), func() {
		srv.drop(s, key)
		srv.l.Logger().Error(fmt.Sprintf("httptunnel in: request from %s: GET for no tunnel", s.Nick()))
		srv.l.Close(s)
	})
	return nil
}

// unpark takes the oldest GET parked for key, if any.
func (srv *server) unpark(key tunnelKey) *loop.Socket {
	list := srv.early[key]
	if len(list) == 0 {
		return nil
	}
	s := list[0]
	srv.drop(s, key)
	s.StopTimer()
	return s
}

func (srv *server) drop(s *loop.Socket, key tunnelKey) {
	list := slices.DeleteFunc(srv.early[key], func(x *loop.Socket) bool { return x == s })
	if len(list) == 0 {
		delete(srv.early, key)
	} else {
		srv.early[key] = list
	}
}

// find returns the oldest tunnel of key that ok accepts.
func (srv *server) find(key tunnelKey, ok func(*hts) bool) *hts {
	for _, e := range srv.byKey[key] {
		if ok(e) {
			return e
		}
	}
	return nil
}

func (srv *server) remove(e *hts) {
	list := srv.byKey[e.key]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			srv.count--
			break
		}
	}
	if len(list) == 0 {
		delete(srv.byKey, e.key)
	} else {
		srv.byKey[e.key] = list
	}
}

// supersede ends the tunnels of a GNU client's address when it opens a new
// one: htc runs one tunnel at a time and its requests name none, so an
// older tunnel there is one its client left, and it would take the new
// tunnel's GET and hand it the old tunnel's data.
func (srv *server) supersede(key tunnelKey) {
	for _, old := range slices.Clone(srv.byKey[key]) {
		old.t.fail(errors.New("superseded by a new tunnel from the same address"))
	}
}

// tunnelKey is what pairs a tunnel's requests: the client's address, and
// the tunnel's id when nproxy's out sent one (tunnelHeader).
type tunnelKey struct {
	addr netip.Addr
	id   string
}

// remoteAddr is the client's address: a PROXY header's, if one came.
func remoteAddr(s *loop.Socket) netip.Addr { return s.RemoteAddr().Addr() }

// hts is the server end of one tunnel: it waits for the client's requests.
type hts struct {
	srv       *server
	t         *tunnel
	key       tunnelKey
	accepted  bool        // the proxy has the tunnel
	helloSeen bool        // OPEN or opMux was read
	next      []queued    // POSTs that came before the current one ended
	waitT     *loop.Timer // the deadline for the next GET
}

// hello checks the first frame: the mux client's key.
func (e *hts) hello(ev event, p []byte) error {
	if e.helloSeen {
		return errors.New("a second OPEN in the tunnel")
	}
	e.helloSeen = true
	if ev == evMux {
		return checkHello(e.srv.c.Key, p)
	}
	return nil
}

func (e *hts) wantsSend() bool { return e.t.err == nil && e.t.send == nil && !e.t.closeSent }

func (e *hts) wantsRecv() bool {
	return e.t.err == nil && !e.t.peerClose && len(e.next) < maxQueued
}

// maxQueued bounds the POSTs a tunnel holds unread. htc writes a body,
// closes it and opens the next without waiting for the server to read it:
// a web proxy in between accepts them all, and they arrive one after the
// other while the first is still being read.
const maxQueued = 8

// queued is a POST waiting for its turn.
type queued struct {
	s      *loop.Socket
	seq    uint64
	length int64
	rest   []byte
}

// takeSend answers a GET: its response body carries the server's data.
func (e *hts) takeSend(s *loop.Socket) {
	if e.waitT != nil {
		e.waitT.Stop()
		e.waitT = nil
	}
	e.t.attachSend(s, responseHead(e.t.contentLength))
	if !e.accepted {
		e.accepted = true
		if e.srv.c.Mux {
			m := newSession(e.srv.l, e.srv.c, &e.srv.c.Options, e.srv.h)
			m.hook = e.srv.c.Hook
			m.Connected(e.srv.l, nil, e.t.vs)
		} else {
			e.srv.h.Accepted(e.srv.l, e.t.vs)
		}
	}
}

// takeRecv reads a POST now, or once the current one ends: htc opens the
// next POST as soon as it has written DISCONNECT, which may still wait
// unread in the current one.
//
// They are read in the order they were accepted, not the order their
// heads were complete in: a proxy opens them in the client's order, but
// one head may take longer to arrive than the next.
func (e *hts) takeRecv(q queued) {
	if e.t.recv == nil {
		e.t.attachRecv(q.s, q.length, q.rest)
		return
	}
	q.rest = append([]byte(nil), q.rest...)
	i := len(e.next)
	for i > 0 && e.next[i-1].seq > q.seq {
		i--
	}
	e.next = slices.Insert(e.next, i, q)
}

func (e *hts) recvEnded(t *tunnel) {
	for len(e.next) > 0 {
		q := e.next[0]
		e.next = e.next[1:]
		if !q.s.Closed() {
			t.attachRecv(q.s, q.length, q.rest)
			return
		}
	}
}

// sendEnded closes the GET whose body is over and waits for the client's
// next one, within the timeout.
func (e *hts) sendEnded(t *tunnel, s *loop.Socket) {
	if s != nil {
		e.srv.l.Close(s)
	}
	e.waitSend()
}

func (e *hts) waitSend() {
	timeout := e.srv.c.timeout()
	e.waitT = e.srv.l.AfterFunc(timeout, func() {
		e.waitT = nil
		e.t.fail(fmt.Errorf("no GET within %v", timeout))
	})
}

func (e *hts) closed(t *tunnel) {
	if e.waitT != nil {
		e.waitT.Stop()
		e.waitT = nil
	}
	for _, q := range e.next {
		e.srv.l.Close(q.s)
	}
	e.next = nil
	e.srv.remove(e)
	if !e.accepted {
		e.srv.l.Close(t.vs)
	}
}

// responseHead is hts's answer to a GET.
func responseHead(contentLength int) []byte {
	return []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Length: " + strconv.Itoa(contentLength) + "\r\n" +
		"Connection: close\r\n" +
		"Pragma: no-cache\r\n" +
		"Cache-Control: no-cache, no-store, must-revalidate\r\n" +
		"Expires: 0\r\n" +
		"Content-Type: text/html\r\n\r\n")
}
