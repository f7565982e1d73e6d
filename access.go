package nproxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nproxy/nproxy/loop"
)

// The access line of a finished connection:
//
//	2026-01-02 15:04:05 access proxy=#1 client=127.0.0.1:40000 target=127.0.0.1:9876 in=12 out=3400 duration=1.5s end=eof
//
// in counts the bytes from the client, out the bytes to it; end is eof
// (both directions closed cleanly), "client reset" or "server reset",
// timeout, refused, error, or closed (by nproxy: Stop, a connector).
//
// It goes to the main log at notice (verbosity 1 and up), among
// Net::Proxy's lines, and to the access log (SetAccessLog) whatever the
// verbosity, as haproxy and nginx keep theirs apart from the error log.
type accessFields struct {
	proxy    int
	client   string
	target   string
	in, out  uint64
	duration time.Duration
	end      string
}

func (p *Proxy) accessFields(client *loop.Socket) accessFields {
	t := client.Traffic()
	return accessFields{
		proxy:    p.id,
		client:   clientAddress(client),
		target:   p.target(client),
		in:       t.In(),
		out:      t.Out(),
		duration: time.Since(client.Born()),
		end:      accessEnd(client.End()),
	}
}

// logAccess writes the access line to the main log, at notice.
func (p *Proxy) logAccess(log *slog.Logger, client *loop.Socket) {
	f := p.accessFields(client)
	loop.Log(log, LevelNotice, "access",
		slog.String("proxy", "#"+strconv.Itoa(f.proxy)),
		slog.String("client", f.client),
		slog.String("target", f.target),
		slog.Uint64("in", f.in),
		slog.Uint64("out", f.out),
		slog.Duration("duration", f.duration),
		slog.String("end", f.end),
	)
}

// clientAddress is the client's address in the access line: the nick,
// which follows the address a PROXY protocol header gave (SetRemoteAddr).
func clientAddress(client *loop.Socket) string { return client.Nick() }

// target is the server the client was relayed to or, if none was reached,
// the out connector's own description of where it goes.
func (p *Proxy) target(client *loop.Socket) string {
	if t := client.Target(); t != "" {
		return t
	}
	if host, port, ok := client.Destination(); ok {
		return net.JoinHostPort(host, strconv.Itoa(port)) // asked by a socks5 or CONNECT client
	}
	if s, ok := p.current().out.(fmt.Stringer); ok && s.String() != "" {
		return s.String()
	}
	return "-"
}

// accessEnd names how the connection ended, seen from its client socket.
func accessEnd(e loop.End) string {
	switch e {
	case loop.EndReset:
		return "client reset"
	case loop.EndPeerReset:
		return "server reset"
	}
	return e.String()
}

// SetAccessLog sends the Server's access lines, one per finished
// connection, to w, whatever the verbosity; nil (the default) sends them
// nowhere but to the main log at notice. The lines are in the log format
// (SetLogFormat). Each loop gathers its lines and writes them within 100 ms,
// 64 KiB at most in one Write, so w needs no buffering; writes from several
// loops are serialized.
func (s *Server) SetAccessLog(w io.Writer) {
	if w == nil {
		s.access.Store(nil)
		return
	}
	s.access.Store(&accessOutput{w: w})
}

// accessOutput is an access log's writer.
type accessOutput struct {
	mu sync.Mutex // serializes the loops' writes: one per pass, not per line
	w  io.Writer
}

// accessBuffer holds one loop's access lines until maxPending of them are
// pending or flushDelay has passed since the first, as nginx's access_log
// buffer= and flush= do: a write(2) per pass would be one per connection or
// two at a high connection rate, and cost more than formatting the lines.
// It is the loop's alone, so appending takes no lock.
type accessBuffer struct {
	srv     *Server
	loop    *loop.Loop
	pending []byte
	armed   bool   // a flush timer runs
	onTimer func() // flushes; made once, so that arming allocates no closure
}

func newAccessBuffer(srv *Server, l *loop.Loop) *accessBuffer {
	b := &accessBuffer{srv: srv, loop: l}
	b.onTimer = func() {
		b.armed = false
		b.flush()
	}
	return b
}

// add appends the access line of a finished connection.
func (b *accessBuffer) add(p *Proxy, client *loop.Socket) {
	f := p.accessFields(client)
	if LogFormat(b.srv.log.format.Load()) == LogJSON {
		b.pending = f.appendJSON(b.pending, time.Now())
	} else {
		b.pending = f.appendText(b.pending, time.Now())
	}
	switch {
	case len(b.pending) >= maxPending:
		b.flush()
	case !b.armed:
		b.armed = true
		b.loop.AfterFunc(flushDelay, b.onTimer)
	}
}

// flush writes the pending lines, if any, to the current access log.
func (b *accessBuffer) flush() {
	if len(b.pending) == 0 {
		return
	}
	if out := b.srv.access.Load(); out != nil {
		out.mu.Lock()
		out.w.Write(b.pending) // an access log that fails cannot say so anywhere better
		out.mu.Unlock()
	}
	b.pending = b.pending[:0]
}

// appendText appends the line in Net::Proxy's format, as the main log
// writes it.
func (f *accessFields) appendText(b []byte, now time.Time) []byte {
	b = now.AppendFormat(b, "2006-01-02 15:04:05")
	b = append(b, " access proxy=#"...)
	b = strconv.AppendInt(b, int64(f.proxy), 10)
	b = append(append(b, " client="...), f.client...)
	b = append(append(b, " target="...), f.target...)
	b = strconv.AppendUint(append(b, " in="...), f.in, 10)
	b = strconv.AppendUint(append(b, " out="...), f.out, 10)
	b = append(append(b, " duration="...), f.duration.String()...)
	b = append(append(b, " end="...), f.end...)
	return append(b, '\n')
}

// appendJSON appends the line as the main log's JSON handler writes it
// (log/slog's: time to the millisecond, duration in nanoseconds).
func (f *accessFields) appendJSON(b []byte, now time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","level":"NOTICE","msg":"access","proxy":"#`...)
	b = strconv.AppendInt(b, int64(f.proxy), 10)
	b = appendJSONString(append(b, `","client":`...), f.client)
	b = appendJSONString(append(b, `,"target":`...), f.target)
	b = strconv.AppendUint(append(b, `,"in":`...), f.in, 10)
	b = strconv.AppendUint(append(b, `,"out":`...), f.out, 10)
	b = strconv.AppendInt(append(b, `,"duration":`...), int64(f.duration), 10)
	b = appendJSONString(append(b, `,"end":`...), f.end)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. A target may be a name a
// SOCKS or CONNECT client sent: any byte, so control characters are
// escaped and invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}
