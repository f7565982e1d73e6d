package httptunnel

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/nproxy/nproxy/loop"
)

// helloHeader carries the mux hello (opMux's payload, base64) in a
// WebSocket upgrade request.
const helloHeader = "X-Nproxy-Mux"

// dialWS starts a mux session on a WebSocket to Host:Port. If the server
// does not switch protocols, the session falls back to request pairs.
func (c *Out) dialWS(l *loop.Loop, m *session) {
	l.Dial(c.Host, c.Port, c.timeout(), func(s *loop.Socket, err error) {
		if err != nil {
			m.die(err)
			return
		}
		s.Connector = c
		cfg, _ := c.config(false, c.Host)
		handshake(s, cfg, false, c.timeout(), func(s *loop.Socket) { c.upgrade(l, m, s) }, m.die)
	})
}

// upgrade asks for the WebSocket on s, connected (and under TLS if wanted).
func (c *Out) upgrade(l *loop.Loop, m *session, s *loop.Socket) {
	key := wsKey()
	hello := muxHello(c.Key)[headerLen:]
	head := "GET " + wsPath + " HTTP/1.1\r\nHost: " + net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n" + helloHeader + ": " + base64.StdEncoding.EncodeToString(hello) + "\r\n\r\n"
	if err := writeAll(s, []byte(head)); err != nil {
		l.Close(s)
		m.die(err)
		return
	}
	readHead(s, c.timeout(), nil, func(s *loop.Socket, head, rest []byte, err error) {
		if err == nil {
			err = checkSwitch(head, key)
		}
		switch {
		case errors.Is(err, errRefused):
			l.Close(s)
			m.die(fmt.Errorf("WebSocket to %s: %w", s.Nick(), err))
		case errors.Is(err, errNoSwitch):
			l.Close(s)
			l.Logger().Info(fmt.Sprintf("httptunnel to %s: %v; using request pairs", s.Nick(), err))
			if err := c.dialTunnel(l, nil, m); err != nil {
				m.die(err)
			}
		case err != nil:
			l.Close(s)
			m.die(fmt.Errorf("WebSocket to %s: %w", s.Nick(), err))
		default:
			newWS(s, true, rest)
			m.Connected(l, nil, s)
		}
	})
}

var errNoSwitch = errors.New("no WebSocket upgrade")

// errRefused is an nproxy mux server's refusal (a wrong key): falling back
// to request pairs would only be refused again.
var errRefused = errors.New("the server refused the mux session (a wrong key?)")

// refusedHead is the answer to an upgrade whose hello is wrong. Its
// helloHeader tells the client that the mux server itself refused, not a
// proxy or a server that does not upgrade.
const refusedHead = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n" + helloHeader + ": refused\r\n\r\n"

// checkSwitch checks the answer to an upgrade request.
func checkSwitch(head []byte, key string) error {
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		return fmt.Errorf("bad HTTP response: %w", err)
	}
	if r.StatusCode != http.StatusSwitchingProtocols && r.Header.Get(helloHeader) != "" {
		return fmt.Errorf("%w (HTTP status %q)", errRefused, r.Status)
	}
	if r.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("%w (HTTP status %q)", errNoSwitch, r.Status)
	}
	if r.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		return errors.New("wrong Sec-WebSocket-Accept")
	}
	return nil
}

// acceptWS answers a mux client's upgrade request and runs a session on
// the WebSocket.
func (srv *server) acceptWS(s *loop.Socket, req request, rest []byte) error {
	hello, err := base64.StdEncoding.DecodeString(req.wsHello)
	if err == nil {
		err = checkHello(srv.c.Key, hello)
	}
	if err != nil {
		writeAll(s, []byte(refusedHead))
		return err
	}
	if err := writeAll(s, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+wsAccept(req.wsKey)+"\r\n\r\n")); err != nil {
		return err
	}
	newWS(s, false, rest)
	m := newSession(srv.l, srv.c, &srv.c.Options, srv.h)
	m.hook = srv.c.Hook
	m.Connected(srv.l, nil, s)
	return nil
}
