package nproxy

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
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

var (
	level  = func() *slog.LevelVar { v := new(slog.LevelVar); v.Set(LevelWarning); return v }()
	logger = slog.New(&lineHandler{w: os.Stderr, level: level, mu: new(sync.Mutex)})
)

// SetVerbosity sets Net::Proxy's log level: 0 errors and warnings only (the
// default), 1 notices, 2 info, 3 debug.
func SetVerbosity(v int) { level.Set(loop.VerbosityLevel(v)) }

// Logger returns the logger nproxy writes to: lines "YYYY-MM-DD HH:MM:SS
// message" on standard error, filtered by SetVerbosity.
func Logger() *slog.Logger { return logger }

// SetLogOutput sends log lines to w instead of standard error.
func SetLogOutput(w io.Writer) {
	logger = slog.New(&lineHandler{w: w, level: level, mu: new(sync.Mutex)})
}

// lineHandler writes Net::Proxy's log format, with any attributes appended
// as key=value.
type lineHandler struct {
	w     io.Writer
	level *slog.LevelVar
	mu    *sync.Mutex
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
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
	buf = append(buf, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is not used by nproxy; groups are flattened.
func (h *lineHandler) WithGroup(string) slog.Handler { return h }
