package loop

import "log/slog"

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
