package httptunnel

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// TLS puts every HTTP connection of a tunnel (each request, or the
// WebSocket of a mux session) under TLS: https to the far end, or to a
// TLS-terminating proxy in front of it. The handshakes run on the loop
// through the ssl connector's engine (ssl.Handshake), with its SSL_*
// parameters; once one is done the connection reads and writes plaintext
// through its transport (loop.Socket.Read and Write), and what the engine
// holds for the fd is flushed by flushConn.
type TLS struct {
	// SSL turns TLS on.
	SSL bool `param:"ssl"`
	// Params are the ssl connector's: the in side needs SSL_cert_file and
	// SSL_key_file; the out side verifies the server's certificate (for
	// SSL_hostname, the host by default) unless SSL_verify_mode is 0.
	ssl.Params

	once sync.Once
	cfg  *tls.Config
	err  error
}

// config builds the TLS configuration once: the server's if server, else
// the client's for host. It is nil without SSL.
func (c *TLS) config(server bool, host string) (*tls.Config, error) {
	c.once.Do(func() {
		switch {
		case !c.SSL:
		case server:
			c.cfg, c.err = c.ServerConfig()
		default:
			p := c.Params
			if p.Hostname == "" {
				p.Hostname = host
			}
			c.cfg, c.err = p.ClientConfig()
		}
	})
	return c.cfg, c.err
}

// handshake runs the TLS handshake on a fresh connection s when cfg is
// set (the server side if server), then calls then; on failure s is
// closed and then is not called. Without cfg, then runs at once.
func handshake(s *loop.Socket, cfg *tls.Config, server bool, timeout time.Duration, then func(*loop.Socket), failed func(error)) {
	if cfg == nil {
		then(s)
		return
	}
	ssl.Handshake(s, cfg, server, timeout, func(err error) {
		if err != nil {
			s.Loop().Close(s)
			failed(fmt.Errorf("TLS with %s: %w", s.Nick(), err))
			return
		}
		then(s)
	})
}

// flushConn writes what a connection's transport (TLS) holds for its fd,
// and reports whether some is still held: it waits for the fd (which is
// then watched for writing), or is still being encrypted (the engine
// wakes the handler's Writable when it is ready). A plain connection
// holds nothing.
func flushConn(s *loop.Socket) (held bool, err error) {
	f, ok := s.Transport().(loop.Flusher)
	if !ok {
		return false, nil
	}
	if err := f.Flush(); err != nil && err != unix.EAGAIN {
		return true, err
	}
	if f.Buffered() == 0 {
		return false, nil
	}
	if f.FdBlocked() {
		s.Loop().WatchWriter(s)
	} else {
		s.Loop().UnwatchWriter(s)
	}
	return true, nil
}

// poke reads s once through its handler when it has a transport: a TLS
// engine may already hold plaintext that no event of the fd will announce
// again (it came with the handshake, or while nobody read s).
func poke(s *loop.Socket, h loop.Handler) {
	if s.Transport() != nil && !s.Closed() {
		h.Readable(s)
	}
}

// closeWhenSent closes s once what its TLS holds is sent (an answer
// written just before), within lingerTime; a plain s at once.
func closeWhenSent(s *loop.Socket) {
	if held, err := flushConn(s); err == nil && held {
		s.SetHandler(closer{})
		s.SetTimer(lingerTime, func() { s.Loop().Close(s) })
		return
	}
	s.Loop().Close(s)
}

// closer waits for TLS to send what it holds, then closes the socket.
type closer struct{}

func (closer) Readable(*loop.Socket) {}

func (closer) Writable(s *loop.Socket) {
	if held, err := flushConn(s); err != nil || !held {
		s.Loop().Close(s)
	}
}
