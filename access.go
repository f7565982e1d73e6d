package nproxy

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// logAccess writes the access line of a finished connection, at notice:
//
//	2026-01-02 15:04:05 access proxy=#1 client=127.0.0.1:40000 target=127.0.0.1:9876 in=12 out=3400 duration=1.5s end=eof
//
// in counts the bytes from the client, out the bytes to it; end is eof
// (both directions closed cleanly), "client reset" or "server reset",
// timeout, refused, error, or closed (by nproxy: Stop, a connector).
func (p *Proxy) logAccess(log *slog.Logger, client *loop.Socket) {
	t := client.Traffic()
	loop.Log(log, LevelNotice, "access",
		slog.String("proxy", "#"+strconv.Itoa(p.id)),
		slog.String("client", clientAddress(client)),
		slog.String("target", p.target(client)),
		slog.Uint64("in", t.In()),
		slog.Uint64("out", t.Out()),
		slog.Duration("duration", time.Since(client.Born())),
		slog.String("end", accessEnd(client.End())),
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
