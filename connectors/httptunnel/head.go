package httptunnel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// maxHead bounds an HTTP request or response head.
const maxHead = 8 << 10

// maxContentLength bounds the Content-Length nproxy accepts from a peer;
// GNU's own is 100 KiB by default. Beyond it (a Content-Length of 2^63, say)
// a peer is either broken or hostile.
const maxContentLength = 1<<31 - 1

var errHeadTooLong = errors.New("HTTP head longer than 8 KiB")

// headReader reads an HTTP head from a socket, within a deadline, then
// waits for as many bytes of body as need says (the server wants a POST's
// first opcode) before it hands the head and what followed it to done. It
// owns the socket's handler and timer meanwhile.
type headReader struct {
	buf    []byte
	needFn func(head []byte) int
	need   int
	done   func(s *loop.Socket, head, rest []byte, err error)
	end    int // length of the head once found, 0 before
}

// readHead starts reading a head on s.
func readHead(s *loop.Socket, timeout time.Duration, need func(head []byte) int, done func(s *loop.Socket, head, rest []byte, err error)) {
	h := &headReader{needFn: need, done: done}
	s.SetHandler(h)
	s.SetTimer(timeout, func() { h.finish(s, fmt.Errorf("no complete HTTP head within %v", timeout)) })
	s.Loop().WatchReader(s)
	poke(s, h)
}

func (h *headReader) Readable(s *loop.Socket) {
	var chunk [2048]byte
	for {
		room := maxHead + h.need - len(h.buf)
		if h.end > 0 {
			room = h.end + h.need - len(h.buf)
		}
		n, err := s.Read(chunk[:min(room, len(chunk))])
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			h.finish(s, err)
			return
		case n == 0:
			h.finish(s, errors.New("connection closed before the HTTP head ended"))
			return
		}
		h.buf = append(h.buf, chunk[:n]...)
		if h.end == 0 {
			if i := bytes.Index(h.buf, []byte("\r\n\r\n")); i >= 0 {
				h.end = i + 4
				if h.needFn != nil {
					h.need = h.needFn(h.buf[:h.end])
				}
			} else if len(h.buf) >= maxHead {
				h.finish(s, errHeadTooLong)
				return
			}
		}
		if h.end > 0 && len(h.buf)-h.end >= h.need {
			h.finish(s, nil)
			return
		}
	}
}

// Writable flushes what TLS holds (the request just written).
func (h *headReader) Writable(s *loop.Socket) {
	if _, err := flushConn(s); err != nil {
		h.finish(s, err)
	}
}

func (h *headReader) finish(s *loop.Socket, err error) {
	if h.done == nil {
		return
	}
	done := h.done
	h.done = nil
	s.StopTimer()
	s.SetHandler(nil)
	s.Loop().UnwatchReader(s)
	if err != nil {
		done(s, nil, nil, err)
		return
	}
	done(s, h.buf[:h.end], h.buf[h.end:], nil)
}

// request is what the server needs of a request head.
type request struct {
	method        string
	contentLength int64
	// A WebSocket upgrade's key and the mux client's hello (base64).
	wsKey, wsHello string
	// tunnel is the id nproxy's out sends in every request of a tunnel
	// (tunnelHeader); GNU htc sends none.
	tunnel string
}

// tunnelHeader names the tunnel a request belongs to. GNU's protocol names
// none: hts serves one tunnel at a time. nproxy's in serves many, and pairs
// the requests of nproxy's out by it; hts ignores it.
const tunnelHeader = "X-Nproxy-Tunnel"

// maxTunnelID bounds tunnelHeader's value (nproxy sends 26 characters).
const maxTunnelID = 64

// parseRequest parses a request head.
func parseRequest(head []byte) (request, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return request{}, fmt.Errorf("bad HTTP request: %w", err)
	}
	if r.ContentLength > maxContentLength {
		return request{}, fmt.Errorf("Content-Length %d out of range", r.ContentLength)
	}
	req := request{method: r.Method, contentLength: r.ContentLength, tunnel: r.Header.Get(tunnelHeader)}
	if len(req.tunnel) > maxTunnelID {
		return request{}, fmt.Errorf("%s of %d bytes, more than %d", tunnelHeader, len(req.tunnel), maxTunnelID)
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		req.wsKey, req.wsHello = r.Header.Get("Sec-WebSocket-Key"), r.Header.Get(helloHeader)
	}
	return req, nil
}

// parseResponse parses the head of the response to a GET: 200 and a
// Content-Length are required.
func parseResponse(head []byte) (int64, error) {
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		return 0, fmt.Errorf("bad HTTP response: %w", err)
	}
	if r.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP status %q", r.Status)
	}
	cl := r.Header.Get("Content-Length")
	n, err := strconv.ParseInt(cl, 10, 64)
	if err != nil || n <= 0 || n > maxContentLength {
		return 0, fmt.Errorf("Content-Length %q out of range", cl)
	}
	return n, nil
}

// writeAll writes a short message (a request or response head) to a fresh
// connection, whose socket buffer is empty: a partial write is an error.
func writeAll(s *loop.Socket, b []byte) error {
	n, err := s.Write(b)
	if err == nil && n < len(b) {
		err = errors.New("short write of an HTTP head")
	}
	if err == nil {
		_, err = flushConn(s)
	}
	return err
}
