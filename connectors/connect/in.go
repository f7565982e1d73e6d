package connect

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/access"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
)

// In is nproxy as a web proxy for CONNECT only, on Host:Port: each client
// asks for a destination, and the proxy's out connector takes it there (a
// tcp out without host: straight; a connect or socks5 out: through another
// proxy). docs/connect-in.md is the spec.
//
//	nproxy --in type=connect,port=3128,users.alice=s3cret --out type=tcp
//	curl -x http://alice:s3cret@127.0.0.1:3128 https://example.org/
type In struct {
	// Host is the address or name to listen on; empty means localhost and
	// "*" every address.
	Host string `param:"host"`
	// Port is the TCP port to listen on.
	Port int `param:"port,required,port"`
	// Control holds the users and the allow rules (default "*:443").
	access.Control
	// Timeout bounds the request; DefaultTimeout when 0.
	Timeout time.Duration `param:"timeout"`
	// HeaderLimit bounds the request's head; DefaultHeaderLimit when 0.
	HeaderLimit int `param:"header_limit"`
	// Hook, if set, sees the data read from clients after the request.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured.
	proxyproto.Accept

	valid connectors.Validation
}

// Validate implements connectors.Validator: users and rules load.
func (c *In) Validate() error {
	return c.valid.Run(c.Accept.Validate, c.checkHeaderLimit, func() error { return c.Load("*:443") })
}

func (c *In) checkHeaderLimit() error {
	if c.HeaderLimit < 0 {
		return errors.New("header_limit cannot be negative")
	}
	return nil
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	pre := &connectors.Preamble{Limit: c.HeaderLimit, Timeout: c.Timeout,
		Step: c.step,
		Done: func(client *loop.Socket) { h.Accepted(l, client) },
		Fail: c.fail,
	}
	if pre.Limit == 0 {
		pre.Limit = DefaultHeaderLimit
	}
	if pre.Timeout <= 0 {
		pre.Timeout = DefaultTimeout
	}
	return c.Accept.Listen(l, c.Host, c.Port, func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		client.State = &asking{}
		pre.Start(client)
	})
}

// statusError is a refusal the client hears as an HTTP status.
type statusError struct {
	status int
	extra  string // header lines, each ending in CRLF
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// status writes an HTTP/1.1 answer with no body.
func status(client *loop.Socket, code int, extra string) error {
	msg := "HTTP/1.1 " + strconv.Itoa(code) + " " + statusText(code) + "\r\n" + extra
	if code != 200 {
		msg += "Connection: close\r\nContent-Length: 0\r\n"
	}
	return connectors.WriteAll(client, []byte(msg+"\r\n"))
}

func statusText(code int) string {
	switch code {
	case 200:
		return "Connection established"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 405:
		return "Method Not Allowed"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 431:
		return "Request Header Fields Too Large"
	case 502:
		return "Bad Gateway"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}

func (c *In) fail(client *loop.Socket, err error) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		status(client, se.status, se.extra)
	case errors.Is(err, connectors.ErrPreambleTooLong):
		status(client, 431, "")
	}
	client.Loop().Logger().Error(fmt.Sprintf("connect in: client %s: %v", client.Nick(), err))
	client.Loop().Close(client)
}

// step waits for the whole head, then judges the request.
func (c *In) step(client *loop.Socket, data []byte) (int, bool, error) {
	end := headEnd(data)
	if end < 0 {
		return 0, false, nil
	}
	host, port, err := c.judge(data[:end])
	if err != nil {
		return 0, false, err
	}
	client.SetDestination(host, port)
	if log := client.Loop().Logger(); log.Enabled(context.Background(), loop.LevelDebug) {
		log.Debug(fmt.Sprintf("connect in: %s asks for %s port %d", client.Nick(), host, port))
	}
	return end, true, nil
}

// headEnd returns the length of the head (up to and including its empty
// line), or -1 while it is incomplete.
func headEnd(data []byte) int {
	crlf, lf := bytes.Index(data, []byte("\r\n\r\n")), bytes.Index(data, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf+2 <= lf):
		return crlf + 4
	case lf >= 0:
		return lf + 2
	}
	return -1
}

// judge parses a whole head and decides: the destination, or the status
// that refuses it.
func (c *In) judge(head []byte) (host string, port int, err error) {
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	method, target, version, ok := parseRequestLine(lines[0])
	switch {
	case !ok:
		return "", 0, &statusError{400, "", fmt.Sprintf("malformed request line %.80q", lines[0])}
	case method != "CONNECT":
		return "", 0, &statusError{405, "Allow: CONNECT\r\n", fmt.Sprintf("method %.20q not allowed", method)}
	case version != "HTTP/1.1" && version != "HTTP/1.0":
		return "", 0, &statusError{400, "", fmt.Sprintf("version %.20q not supported", version)}
	}
	host, port, err = parseTarget(target)
	if err != nil {
		return "", 0, &statusError{400, "", err.Error()}
	}
	if c.NeedsAuth() && !c.authorized(lines[1:]) {
		return "", 0, &statusError{407, "Proxy-Authenticate: Basic realm=\"nproxy\"\r\n", "missing or wrong credentials"}
	}
	if !c.Permit(host, port) {
		return "", 0, &statusError{403, "", fmt.Sprintf("%s port %d not allowed", host, port)}
	}
	return host, port, nil
}

func parseRequestLine(line string) (method, target, version string, ok bool) {
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// parseTarget reads CONNECT's authority-form: host:port or [v6]:port.
func parseTarget(target string) (string, int, error) {
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, fmt.Errorf("target %.80q is not host:port", target)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || host == "" || len(host) > 255 || strings.ContainsAny(host, " \t/@\x00") {
		return "", 0, fmt.Errorf("target %.80q is not host:port", target)
	}
	return host, port, nil
}

// authorized finds a Proxy-Authorization: Basic header with good
// credentials.
func (c *In) authorized(headers []string) bool {
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Proxy-Authorization") {
			continue
		}
		scheme, cred, _ := strings.Cut(strings.TrimSpace(value), " ")
		if !strings.EqualFold(scheme, "Basic") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			continue
		}
		user, pass, _ := strings.Cut(string(raw), ":")
		if c.Authenticate(user, pass) {
			return true
		}
	}
	return false
}

// asking is a client whose request is being read, then its pending answer.
type asking struct{ answered bool }

// Answer implements connectors.Answerer: 200, or 502/504 with a close.
func (a *asking) Answer(client, server *loop.Socket, err error) error {
	if a.answered {
		return nil
	}
	a.answered = true
	switch {
	case err == nil:
		return status(client, 200, "")
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded):
		return status(client, 504, "")
	}
	return status(client, 502, "")
}
