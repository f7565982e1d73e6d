package loop

import (
	"net/netip"

	"github.com/nproxy/nproxy/buffer"

	"golang.org/x/sys/unix"
)

// extra holds the slots of a socket that few sockets use: what a preamble
// learned about a client (the address a PROXY header carried, the
// destination a SOCKS5 or CONNECT request named), the data stashed before
// a relay (dual, connect), the names for logs (which a socket gets only when
// something is logged about it), and a split socket's second fd. It is
// allocated only for the sockets that have one, so that a plain relayed
// socket, and each of an idle UDP flow's two, pays a pointer for it.
type extra struct {
	remote, local netip.AddrPort
	destHost      string
	destPort      int
	nick          string       // the socket's name in logs (Socket.Nick)
	target        string       // the server's name, for the access log
	early         buffer.Queue // data read from this socket before it had a peer
	source        netip.Addr   // the client's address, when its gate needed it
	split         *split       // the second fd's state, for a socket made of two fds
}

// splitState returns the state of a split socket's second fd, nil for a
// socket of one fd.
func (s *Socket) splitState() *split {
	if s.ext == nil {
		return nil
	}
	return s.ext.split
}

func (s *Socket) extra() *extra {
	if s.ext == nil {
		s.ext = new(extra)
	}
	return s.ext
}

// RemoteAddresser is implemented by the transport of a Virtual socket that
// knows the address of its remote end (a UDP flow's client): RemoteAddr and
// Nick ask it, only when they are called, so that a flow keeps no name.
type RemoteAddresser interface {
	RemoteAddr() netip.AddrPort
}

// SetRemoteAddr replaces the client's address: a PROXY protocol header
// carries the real client's, and from then on it is the address logs, hooks,
// the access log and send_proxy see (RemoteAddr), and the socket's nick.
func (s *Socket) SetRemoteAddr(a netip.AddrPort) {
	x := s.extra()
	x.remote, x.nick = a, ""
}

// RemoteAddr returns the client's address: the one set with SetRemoteAddr,
// or else the socket's peer address (its transport's, for a Virtual socket
// whose transport is a RemoteAddresser; invalid for a unix socket, and for a
// closed socket, whose fd number may belong to another by now).
func (s *Socket) RemoteAddr() netip.AddrPort {
	if s.ext != nil && s.ext.remote.IsValid() {
		return s.ext.remote
	}
	if s.fd < 0 {
		if a, ok := s.transport.(RemoteAddresser); ok {
			return a.RemoteAddr()
		}
	}
	if s.closed {
		return netip.AddrPort{}
	}
	sa, err := unix.Getpeername(s.fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return sockaddrAddrPort(sa)
}

// SetLocalAddr replaces the address the client connected to, as a PROXY
// header's destination does.
func (s *Socket) SetLocalAddr(a netip.AddrPort) { s.extra().local = a }

// LocalAddr returns the address the client connected to: the one set with
// SetLocalAddr, or else the socket's own address (invalid once closed).
func (s *Socket) LocalAddr() netip.AddrPort {
	if s.ext != nil && s.ext.local.IsValid() {
		return s.ext.local
	}
	if s.closed {
		return netip.AddrPort{}
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return sockaddrAddrPort(sa)
}

// SetDestination records where the client asked to go (a SOCKS5 or CONNECT
// request): an out connector without a server of its own (a tcp out with no
// host) connects there, and one that chains through an upstream proxy (socks5,
// connect) asks that proxy for it.
func (s *Socket) SetDestination(host string, port int) {
	o := s.extra()
	o.destHost, o.destPort = host, port
}

// Destination returns the destination recorded with SetDestination; ok is
// false when the client named none.
func (s *Socket) Destination() (host string, port int, ok bool) {
	if s.ext == nil || s.ext.destHost == "" {
		return "", 0, false
	}
	return s.ext.destHost, s.ext.destPort, true
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}
