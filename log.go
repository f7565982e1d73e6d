package nproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// Log levels, as Net::Proxy names them.
const (
	LevelError   = loop.LevelError
	LevelWarning = loop.LevelWarning
	LevelNotice  = loop.LevelNotice
	LevelInfo    = loop.LevelInfo
	LevelDebug   = loop.LevelDebug
)

// LogFormat is how a Server writes its log lines.
type LogFormat int32

// The log formats.
const (
	// LogText is Net::Proxy's "YYYY-MM-DD HH:MM:SS message", with any
	// attributes appended as key=value.
	LogText LogFormat = iota
	// LogJSON is one JSON object per line, from log/slog's JSON handler.
	LogJSON
)

// ParseLogFormat reads "text" or "json".
func ParseLogFormat(s string) (LogFormat, error) {
	switch s {
	case "text":
		return LogText, nil
	case "json":
		return LogJSON, nil
	}
	return 0, fmt.Errorf("unknown log format %q (text, json)", s)
}

// logConfig is a Server's logging: level, format and output may change
// while loops log, so the logger the loops hold reads them at each line.
type logConfig struct {
	verbosity atomic.Int32
	format    atomic.Int32
	once      sync.Once
	logger    *slog.Logger

	mu      sync.Mutex  // guards w, pending and timer
	w       io.Writer   // nil means standard error
	pending []byte      // lines not yet written to w
	dirty   atomic.Bool // pending is not empty: lets Flush skip the mutex
	timer   *time.Timer // flushes lines logged off the loops
}

// Lines are gathered and written to the output once per loop pass, as one
// write(2): at notice a connection makes seven lines, and a write each cost
// more CPU than relaying it. Errors are written at once; lines logged off the
// loops wait for flushDelay at most, and pending stays under maxPending.
const (
	flushDelay = 100 * time.Millisecond
	maxPending = 64 << 10
)

// SetVerbosity sets Net::Proxy's log level: 0 errors and warnings only (the
// default), 1 notices, 2 info, 3 debug.
func (s *Server) SetVerbosity(v int) { s.log.verbosity.Store(int32(v)) }

// SetLogOutput sends the Server's log lines to w instead of standard error.
func (s *Server) SetLogOutput(w io.Writer) {
	s.log.mu.Lock()
	s.log.flushLocked() // what was logged before goes where it was meant to
	s.log.w = w
	s.log.mu.Unlock()
}

// SetLogFormat sets the Server's log format.
func (s *Server) SetLogFormat(f LogFormat) { s.log.format.Store(int32(f)) }

// Logger returns the logger the Server writes to, filtered by SetVerbosity.
func (s *Server) Logger() *slog.Logger {
	s.log.once.Do(func() { s.log.logger = slog.New(&serverHandler{c: &s.log}) })
	return s.log.logger
}

// Level implements slog.Leveler.
func (c *logConfig) Level() slog.Level { return loop.VerbosityLevel(int(c.verbosity.Load())) }

// Write implements io.Writer, one line at a time: the line joins those
// pending until the next Flush.
func (c *logConfig) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, p...)
	if len(c.pending) >= maxPending {
		return len(p), c.flushLocked()
	}
	if !c.dirty.Swap(true) {
		if c.timer == nil {
			c.timer = time.AfterFunc(flushDelay, c.flush)
		} else {
			c.timer.Reset(flushDelay)
		}
	}
	return len(p), nil
}

// flush writes the pending lines. The loops call it after each pass, where
// it costs an atomic load when nothing was logged.
func (c *logConfig) flush() {
	if !c.dirty.Load() {
		return
	}
	c.mu.Lock()
	c.flushLocked()
	c.mu.Unlock()
}

func (c *logConfig) flushLocked() error {
	c.dirty.Store(false)
	if len(c.pending) == 0 {
		return nil
	}
	w := c.w
	if w == nil {
		w = os.Stderr
	}
	_, err := w.Write(c.pending)
	c.pending = c.pending[:0]
	return err
}

// serverHandler writes a Server's records in its current format.
type serverHandler struct {
	c     *logConfig
	attrs []slog.Attr
}

func (h *serverHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.c.Level() }

func (h *serverHandler) Handle(ctx context.Context, r slog.Record) error {
	if LogFormat(h.c.format.Load()) == LogJSON {
		var j slog.Handler = slog.NewJSONHandler(h.c, &slog.HandlerOptions{Level: h.c, ReplaceAttr: levelName})
		if len(h.attrs) > 0 {
			j = j.WithAttrs(h.attrs)
		}
		err := j.Handle(ctx, r)
		h.flushErrors(r)
		return err
	}
	_, err := h.c.Write(h.line(r))
	h.flushErrors(r)
	return err
}

// flushErrors writes an error at once: it may be the last line before the
// process ends.
func (h *serverHandler) flushErrors(r slog.Record) {
	if r.Level >= LevelError {
		h.c.flush()
	}
}

// line formats r as Net::Proxy does: "YYYY-MM-DD HH:MM:SS message".
func (h *serverHandler) line(r slog.Record) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	buf := t.AppendFormat(make([]byte, 0, 128), "2006-01-02 15:04:05 ")
	buf = append(buf, r.Message...)
	appendAttr := func(a slog.Attr) bool {
		buf = append(buf, ' ')
		buf = append(buf, a.Key...)
		buf = append(buf, '=')
		buf = append(buf, a.Value.String()...)
		return true
	}
	for _, a := range h.attrs {
		appendAttr(a)
	}
	r.Attrs(appendAttr)
	return append(buf, '\n')
}

func (h *serverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is not used by nproxy; groups are flattened.
func (h *serverHandler) WithGroup(string) slog.Handler { return h }

// levelName names the JSON "level" by Net::Proxy's levels, NOTICE included
// (slog would call it INFO+2).
func levelName(_ []string, a slog.Attr) slog.Attr {
	if a.Key != slog.LevelKey {
		return a
	}
	switch l := a.Value.Any().(slog.Level); {
	case l >= LevelError:
		a.Value = slog.StringValue("ERROR")
	case l >= LevelNotice:
		a.Value = slog.StringValue("NOTICE")
	case l >= LevelInfo:
		a.Value = slog.StringValue("INFO")
	default:
		a.Value = slog.StringValue("DEBUG")
	}
	return a
}
