package httptunnel

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Out is nproxy as htc: for each client it opens a tunnel to an hts (or an
// nproxy httptunnel In) at Host:Port, directly or through an HTTP proxy
// that forwards ordinary requests.
type Out struct {
	// Host is the tunnel server's address or name.
	Host string `param:"host,required"`
	// Port is the tunnel server's TCP port.
	Port int `param:"port,required,port"`
	// ProxyHost, if set, is a web proxy every request goes through (htc -P).
	ProxyHost string `param:"proxy_host"`
	// ProxyPort is the web proxy's port; 0 means 8080, as htc's.
	ProxyPort int `param:"proxy_port"`
	// ProxyUser and ProxyPass, if set, authenticate with the proxy (htc -A).
	ProxyUser string `param:"proxy_user"`
	ProxyPass string `param:"proxy_pass"`
	// WebSocket runs a mux session on one WebSocket (RFC 6455) rather than
	// request pairs, falling back to them if the server does not upgrade.
	// Not through ProxyHost, which may forward ordinary requests only.
	WebSocket bool `param:"websocket"`
	// UserAgent, if set, is sent with every request (htc -U).
	UserAgent string `param:"user_agent"`
	// Options are the parameters htc shares with hts.
	Options
	// TLS, if on, runs every request (or the WebSocket) over TLS.
	TLS
	// Hook, if set, sees the data read from the tunnel.
	Hook loop.Hook

	mu       sync.Mutex
	sessions map[*loop.Loop]*session // with Mux, each loop's session
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	if c.ProxyPort < 0 || c.ProxyPort > 65535 {
		return fmt.Errorf("proxy_port %d out of range (1-65535)", c.ProxyPort)
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	_, err := c.config(false, c.Host)
	return err
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, err)
		return
	}
	if c.Mux {
		if m, err := c.session(l); err != nil {
			h.Failed(l, client, err)
		} else {
			m.open(client, h)
		}
		return
	}
	if err := c.dialTunnel(l, client, h); err != nil {
		h.Failed(l, client, err)
	}
}

// dialTunnel starts a tunnel for client, whose progress goes to h.
func (c *Out) dialTunnel(l *loop.Loop, client *loop.Socket, h connectors.Handler) error {
	e := &htc{c: c, l: l, client: client, h: h, id: rand.Text()}
	t, err := newTunnel(l, e, fmt.Sprintf("to %s", net.JoinHostPort(c.Host, strconv.Itoa(c.Port))), &c.Options)
	if err != nil {
		return err
	}
	e.t = t
	t.vs.Connector, t.vs.Hook = c, c.Hook
	if c.Mux {
		t.maxData = maxFrame // the peer is an nproxy, not GNU
	}
	e.dialSend()
	return nil
}

// session returns l's mux session, starting one if there is none: every
// client of the loop becomes a stream of it.
func (c *Out) session(l *loop.Loop) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.sessions[l]; m != nil {
		return m, nil
	}
	m := newSession(l, c, &c.Options, nil)
	m.hook = c.Hook
	if c.WebSocket && c.ProxyHost == "" {
		c.dialWS(l, m)
	} else if err := c.dialTunnel(l, nil, m); err != nil {
		return nil, err
	}
	if c.sessions == nil {
		c.sessions = map[*loop.Loop]*session{}
	}
	c.sessions[l] = m
	m.onEnd = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sessions[l] == m {
			delete(c.sessions, l)
		}
	}
	return m, nil
}

// htc is the client end of one tunnel: it dials every request.
type htc struct {
	c       *Out
	l       *loop.Loop
	t       *tunnel
	client  *loop.Socket
	h       connectors.Handler
	id      string // sent in every request (tunnelHeader), so that an nproxy in pairs them exactly
	started bool   // the relay has the tunnel
	opened  bool   // OPEN was sent
}

// dial connects to the tunnel server, or to the web proxy.
func (e *htc) dial(then func(s *loop.Socket)) {
	host, port := e.c.Host, e.c.Port
	if e.c.ProxyHost != "" {
		host, port = e.c.ProxyHost, e.c.ProxyPort
		if port == 0 {
			port = 8080
		}
	}
	e.l.Dial(host, port, e.c.timeout(), func(s *loop.Socket, err error) {
		if e.t.err != nil || e.t.done {
			if s != nil {
				e.l.Close(s)
			}
			return
		}
		if err != nil {
			e.t.fail(err)
			return
		}
		s.Connector = e.c
		cfg, _ := e.c.config(false, e.c.Host)
		handshake(s, cfg, false, e.c.timeout(), then, e.t.fail)
	})
}

// dialSend opens a POST; the first carries OPEN and is followed by the GET.
func (e *htc) dialSend() {
	e.dial(func(s *loop.Socket) {
		cl := e.t.contentLength
		e.t.attachSend(s, e.head("POST", cl))
		if !e.opened {
			e.opened = true
			first := openFrame
			if e.c.Mux {
				first = muxHello(e.c.Key)
			}
			e.t.out = append(e.t.out, first...)
			e.t.room -= len(first)
			e.t.flush()
			e.dialRecv()
		}
	})
}

// dialRecv opens a GET and reads its response head.
func (e *htc) dialRecv() {
	e.dial(func(s *loop.Socket) {
		if err := writeAll(s, e.head("GET", -1)); err != nil {
			e.l.Close(s)
			e.t.fail(fmt.Errorf("GET: %w", err))
			return
		}
		readHead(s, e.c.timeout(), nil, func(s *loop.Socket, head, rest []byte, err error) {
			if err == nil {
				var cl int64
				if cl, err = parseResponse(head); err == nil {
					e.t.attachRecv(s, cl, rest)
					e.start()
					return
				}
			}
			e.l.Close(s)
			e.t.fail(fmt.Errorf("GET: %w", err))
		})
	})
}

// start hands the tunnel to the relay once its first GET is answered.
func (e *htc) start() {
	if !e.started && e.t.err == nil {
		e.started = true
		e.h.Connected(e.l, e.client, e.t.vs)
	}
}

// head is a request head as htc writes it; length < 0 means none.
func (e *htc) head(method string, length int) []byte {
	target := "/index.html?crap=" + strconv.FormatInt(time.Now().Unix(), 10)
	hostPort := net.JoinHostPort(e.c.Host, strconv.Itoa(e.c.Port))
	if e.c.ProxyHost != "" {
		target = "http://" + hostPort + target
	}
	version := "HTTP/1.1"
	if e.c.Strict {
		version = "HTTP/1.0"
	}
	b := []byte(method + " " + target + " " + version + "\r\nHost: " + hostPort + "\r\n")
	if length >= 0 {
		b = append(b, "Content-Length: "+strconv.Itoa(length)+"\r\n"...)
	}
	b = append(b, "Connection: close\r\n"+tunnelHeader+": "+e.id+"\r\n"...)
	if e.c.ProxyUser != "" {
		auth := base64.StdEncoding.EncodeToString([]byte(e.c.ProxyUser + ":" + e.c.ProxyPass))
		b = append(b, "Proxy-Authorization: Basic "+auth+"\r\n"...)
	}
	if e.c.UserAgent != "" {
		b = append(b, "User-Agent: "+e.c.UserAgent+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

// sendEnded opens the next POST once the server has read the last one:
// hts closes a POST when it reads its DISCONNECT, and refuses a POST that
// comes before (hts 3.3 rejects a second POST while it reads one; its
// listen backlog is 1).
// hello refuses OPEN and opMux: servers send neither.
func (e *htc) hello(event, []byte) error { return errors.New("the server sent OPEN") }

func (e *htc) sendEnded(t *tunnel, s *loop.Socket) {
	switch {
	case s == nil && !e.started:
		e.t.fail(errors.New("the server closed the first POST: it refused the tunnel (a wrong key?)"))
		return
	case s == nil:
		// Servers close a POST only once they read its DISCONNECT.
		e.t.fail(errors.New("the server closed a POST before its end"))
		return
	}
	s.SetHandler(retired{e})
	s.SetTimer(e.c.timeout(), func() { retired{e}.next(s) })
	e.l.WatchReader(s)
	poke(s, retired{e}) // TLS may have read the server's close already
}

// retired waits for the server to close a POST whose body is over.
type retired struct{ e *htc }

func (r retired) Readable(s *loop.Socket) {
	var junk [512]byte
	// EAGAIN first: a TLS transport reports it with n == 0, not -1.
	if n, err := s.Read(junk[:]); err != unix.EAGAIN && (n == 0 || err != nil) {
		r.next(s)
	}
}

// Writable flushes what TLS still holds.
func (r retired) Writable(s *loop.Socket) {
	if _, err := flushConn(s); err != nil {
		r.next(s)
	}
}

func (r retired) next(s *loop.Socket) {
	r.e.l.Close(s)
	if r.e.t.err == nil && !r.e.t.done {
		r.e.dialSend()
	}
}
func (e *htc) recvEnded(*tunnel) { e.dialRecv() }

// closed tells the proxy when the tunnel failed before the relay had it.
func (e *htc) closed(t *tunnel) {
	if !e.started {
		e.started = true
		e.l.Close(t.vs)
		e.h.Failed(e.l, e.client, fmt.Errorf("httptunnel %s: %w", t.name, t.err))
	}
}
