package httptunnel

import (
	"fmt"
	"time"
)

// GNU httptunnel's defaults.
const (
	DefaultContentLength = 100 << 10
	DefaultKeepAlive     = 5 * time.Second
	DefaultMaxAge        = 300 * time.Second
	DefaultTimeout       = 10 * time.Second
)

// DefaultMuxContentLength is a mux session's body length unless
// ContentLength says: both ends are nproxies, and every body ended costs a
// reconnection (a round trip, and the wait for the server to read it), so
// bodies are longer than GNU's 100 KiB, yet under the 1 MiB that web
// proxies commonly accept by default (nginx's client_max_body_size).
const DefaultMuxContentLength = 1000000

// minContentLength keeps a body large enough for a frame with payload and
// the DISCONNECT after it.
const minContentLength = 16

// Options are the parameters both ends share, named after htc's and hts's
// options.
type Options struct {
	// ContentLength is the Content-Length of the bodies this end sends
	// (htc/hts -c); 0 means DefaultContentLength, or with Mux
	// DefaultMuxContentLength.
	ContentLength int `param:"content_length"`
	// Strict pads every body to its full Content-Length (htc -S) and
	// sends requests as HTTP/1.0, for proxies that insist on both.
	Strict bool `param:"strict"`
	// KeepAlive is the silence after which a PAD1 is sent (-k); 0 means
	// DefaultKeepAlive, a negative value none.
	KeepAlive time.Duration `param:"keep_alive"`
	// MaxConnectionAge ends a request body after this long (-M, the client
	// only); 0 means DefaultMaxAge, a negative value never.
	MaxConnectionAge time.Duration `param:"max_connection_age"`
	// Timeout bounds each connect, each HTTP head, and the wait for a
	// request the other end owes; 0 means DefaultTimeout.
	Timeout time.Duration `param:"timeout"`
	// Mux carries many connections over one session between two nproxies
	// (docs/httptunnel-mux.md) instead of one per tunnel, GNU style.
	Mux bool `param:"mux"`
	// Key is the secret a mux client proves it knows; required with Mux.
	Key string `param:"key"`
	// MaxStreams bounds a mux session's open streams (the server's side);
	// 0 means DefaultMaxStreams.
	MaxStreams int `param:"max_streams"`
}

// DefaultMaxStreams bounds a mux session's streams unless MaxStreams says.
const DefaultMaxStreams = 1024

func (o *Options) maxStreams() int {
	if o.MaxStreams <= 0 {
		return DefaultMaxStreams
	}
	return o.MaxStreams
}

func (o *Options) contentLength() int {
	switch {
	case o.ContentLength != 0:
	case o.Mux:
		return DefaultMuxContentLength
	default:
		return DefaultContentLength
	}
	return o.ContentLength
}

func (o *Options) keepAlive() time.Duration {
	if o.KeepAlive == 0 {
		return DefaultKeepAlive
	}
	return o.KeepAlive
}

func (o *Options) maxAge() time.Duration {
	if o.MaxConnectionAge == 0 {
		return DefaultMaxAge
	}
	return o.MaxConnectionAge
}

func (o *Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// validate checks the options' ranges.
func (o *Options) validate() error {
	if cl := o.contentLength(); cl < minContentLength || cl > maxContentLength {
		return fmt.Errorf("content_length %d out of range (%d-%d)", cl, minContentLength, maxContentLength)
	}
	if o.Mux && o.Key == "" {
		return fmt.Errorf("mux=1 needs a key")
	}
	return nil
}
