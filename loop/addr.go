package loop

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// origin holds what a preamble learned about a client: the address a PROXY
// header carried, and the destination a SOCKS5 or CONNECT request named. It
// is allocated only for the sockets that have one, so that a plain relayed
// socket pays a pointer for it.
type origin struct {
	remote, local netip.AddrPort
	destHost      string
	destPort      int
}

func (s *Socket) origin() *origin {
	if s.orig == nil {
		s.orig = new(origin)
	}
	return s.orig
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
	s.origin().remote = a
	s.nick = ""
}

// RemoteAddr returns the client's address: the one set with SetRemoteAddr,
// or else the socket's peer address (its transport's, for a Virtual socket
// whose transport is a RemoteAddresser; invalid for a unix socket, and for a
// closed socket, whose fd number may belong to another by now).
func (s *Socket) RemoteAddr() netip.AddrPort {
	if s.orig != nil && s.orig.remote.IsValid() {
		return s.orig.remote
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
func (s *Socket) SetLocalAddr(a netip.AddrPort) { s.origin().local = a }

// LocalAddr returns the address the client connected to: the one set with
// SetLocalAddr, or else the socket's own address (invalid once closed).
func (s *Socket) LocalAddr() netip.AddrPort {
	if s.orig != nil && s.orig.local.IsValid() {
		return s.orig.local
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
	o := s.origin()
	o.destHost, o.destPort = host, port
}

// Destination returns the destination recorded with SetDestination; ok is
// false when the client named none.
func (s *Socket) Destination() (host string, port int, ok bool) {
	if s.orig == nil || s.orig.destHost == "" {
		return "", 0, false
	}
	return s.orig.destHost, s.orig.destPort, true
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
