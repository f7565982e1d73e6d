package loop

import (
	"errors"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// inherited are listening sockets handed over by the process that started
// this one (systemd's socket activation, or nproxy's binary upgrade), by
// the address they are bound to; several per address when the old
// process had several loops.
var inherited struct {
	sync.Mutex
	fds map[netip.AddrPort][]int
}

// Inherit offers fd, a listening TCP socket this process was given, to
// Listen: the next Listen on its address takes it instead of binding a new
// socket. It is the same socket the old process accepted from, backlog
// included, so handing it over refuses no client (closing a SO_REUSEPORT
// listener instead drops the clients in its backlog, unless the kernel
// migrates them: net.ipv4.tcp_migrate_req, off by default).
func Inherit(fd int) error {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v == 0 {
		return errors.New("not a listening socket")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	addr, ok := addrPortOf(sa)
	if !ok {
		return errors.New("not a TCP socket")
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	unix.CloseOnExec(fd)
	inherited.Lock()
	defer inherited.Unlock()
	if inherited.fds == nil {
		inherited.fds = map[netip.AddrPort][]int{}
	}
	inherited.fds[addr] = append(inherited.fds[addr], fd)
	return nil
}

// takeInherited returns a socket inherited for addr, if any: each one
// given in turn, then duplicates of the last, so that every loop of this
// process listens on it. The last stays in the registry until
// ReleaseInherited.
func takeInherited(addr netip.AddrPort) (int, bool) {
	inherited.Lock()
	defer inherited.Unlock()
	fds := inherited.fds[addr]
	switch len(fds) {
	case 0:
		return -1, false
	case 1:
		fd, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
		return fd, err == nil
	}
	inherited.fds[addr] = fds[1:]
	return fds[0], true
}

// ReleaseInherited closes the inherited sockets still held, once every
// listener was opened: a socket no proxy listens on would otherwise queue
// clients no one accepts.
func ReleaseInherited() {
	inherited.Lock()
	defer inherited.Unlock()
	for _, fds := range inherited.fds {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	inherited.fds = nil
}

func addrPortOf(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// Handover keeps the listening socket of s, which closes, for the next
// Listen on its address on this loop, until EndHandover: a listener
// reopened with new parameters (a reload) is then the same socket, and the
// clients in its backlog are not reset.
func (l *Loop) Handover(s *Socket) {
	sa, err := unix.Getsockname(s.fd)
	addr, ok := addrPortOf(sa)
	if err != nil || !ok {
		l.Close(s)
		return
	}
	fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	l.Close(s)
	if err != nil {
		return
	}
	if l.handedOver == nil {
		l.handedOver = map[netip.AddrPort]int{}
	}
	l.handedOver[addr] = fd
}

// EndHandover closes the sockets Handover kept that no Listen took.
func (l *Loop) EndHandover() {
	for addr, fd := range l.handedOver {
		unix.Close(fd)
		delete(l.handedOver, addr)
	}
}

// takeHandedOver is the socket Handover kept for addr, if any.
func (l *Loop) takeHandedOver(addr netip.AddrPort) (int, bool) {
	fd, ok := l.handedOver[addr]
	if ok {
		delete(l.handedOver, addr)
	}
	return fd, ok
}

// ListenerFds returns the fds of the loop's listeners, to hand to another
// process (see Inherit). Call it on the loop.
func (l *Loop) ListenerFds() []int {
	var fds []int
	for _, s := range l.Listeners() {
		fds = append(fds, s.fd)
	}
	return fds
}
