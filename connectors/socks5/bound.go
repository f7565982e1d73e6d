package socks5

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// boundAddr is the address fd is bound to, IPv4-mapped addresses unmapped:
// the TCP connection's own, not a PROXY header's; a reply's BND.ADDR and
// BND.PORT. It is read with one getsockname(2) into a buffer on the stack:
// x/sys's Getsockname asks getsockopt(SO_PROTOCOL) besides, to tell TCP
// from SCTP, and allocates twice, on every SOCKS5 connection.
func boundAddr(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6 // large enough for either family
	size := uint32(unix.SizeofSockaddrInet6)
	_, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd),
		uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return netip.AddrPort{}, errno
	}
	// The port is in network byte order, at the same offset in both
	// families' sockaddrs.
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), nil
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("not an IP socket (address family %d)", sa.Family)
}
