package nproxy

import (
	"io"
	"log/slog"
)

// DefaultServer is the Server that Net::Proxy's class methods work on:
// Proxy.Register, Mainloop, Stop, SetOptions, SetVerbosity and the other
// package-level functions, as net/http's DefaultServeMux serves http.Handle.
var DefaultServer = &Server{}

// Mainloop runs DefaultServer's registered proxies (Net::Proxy's mainloop);
// see Server.Mainloop.
func Mainloop(max int) error { return DefaultServer.Mainloop(max) }

// Stop makes DefaultServer's running Mainloop close everything and return.
func Stop() { DefaultServer.Stop() }

// SetOptions sets the options of DefaultServer's next Mainloop.
func SetOptions(o Options) { DefaultServer.SetOptions(o) }

// TotalOpened returns the number of connections accepted by all of
// DefaultServer's proxies (Net::Proxy's stat_total_opened).
func TotalOpened() int64 { return DefaultServer.TotalOpened() }

// TotalClosed returns the number of connections ended over all of
// DefaultServer's proxies (Net::Proxy's stat_total_closed).
func TotalClosed() int64 { return DefaultServer.TotalClosed() }

// SplicedBytes returns the bytes DefaultServer relayed with splice(2).
func SplicedBytes() uint64 { return DefaultServer.SplicedBytes() }

// CopiedBytes returns the bytes DefaultServer relayed through user-space
// buffers (hooks, TLS, handshakes).
func CopiedBytes() uint64 { return DefaultServer.CopiedBytes() }

// SetVerbosity sets DefaultServer's log level (Net::Proxy's set_verbosity):
// 0 errors only (the default), 1 notices, 2 info, 3 debug.
func SetVerbosity(v int) { DefaultServer.SetVerbosity(v) }

// SetLogOutput sends DefaultServer's log lines to w instead of standard
// error.
func SetLogOutput(w io.Writer) { DefaultServer.SetLogOutput(w) }

// SetLogFormat sets DefaultServer's log format.
func SetLogFormat(f LogFormat) { DefaultServer.SetLogFormat(f) }

// Logger returns the logger DefaultServer writes to.
func Logger() *slog.Logger { return DefaultServer.Logger() }

// SetAccessLog sends DefaultServer's access lines to w (see
// Server.SetAccessLog).
func SetAccessLog(w io.Writer) { DefaultServer.SetAccessLog(w) }
