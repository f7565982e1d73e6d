package loop

import (
	"context"
	"log/slog"
	"time"
)

// Net::Proxy's log levels as slog levels. Net::Proxy prints errors always,
// notices at verbosity 1, info at 2 and debug at 3. nproxy adds warnings,
// also printed always: trouble an operator must see (accept paused at the
// fd limit, a backend refusing), said once per burst rather than per event.
const (
	LevelError   = slog.LevelError
	LevelWarning = slog.LevelWarn
	LevelNotice  = slog.Level(2)
	LevelInfo    = slog.LevelInfo
	LevelDebug   = slog.LevelDebug
)

// notice logs msg at Net::Proxy's level 1. Callers check noticing first
// when building msg costs a name lookup.
func (l *Loop) notice(msg string) { Log(l.log, LevelNotice, msg) }

// Log writes msg and attrs at level to log's handler, if it is enabled,
// without the caller lookup slog.Logger makes for every record
// (runtime.Callers costs more than formatting the line, and nproxy's lines
// carry no source position). It is for lines written per connection.
func Log(log *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	h := log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	h.Handle(ctx, r)
}

// noticing reports whether notices are logged.
func (l *Loop) noticing() bool { return l.log.Enabled(context.Background(), LevelNotice) }

// errorsOnly passes only errors and warnings (the default verbosity) to its
// handler.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= LevelWarning && h.Handler.Enabled(ctx, l)
}

func (h errorsOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(attrs)}
}

func (h errorsOnly) WithGroup(name string) slog.Handler { return errorsOnly{h.Handler.WithGroup(name)} }

// VerbosityLevel maps a Net::Proxy verbosity (0 to 3) to the least severe
// level that is logged.
func VerbosityLevel(v int) slog.Level {
	switch {
	case v <= 0:
		return LevelWarning
	case v == 1:
		return LevelNotice
	case v == 2:
		return LevelInfo
	}
	return LevelDebug
}
