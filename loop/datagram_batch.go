package loop

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PacketAddr is a datagram's source or destination as the kernel gave it: a
// raw sockaddr, kept raw so that a reply goes back with no conversion and no
// allocation (on a dual-stack socket an IPv4 client is an IPv4-mapped IPv6
// address, and must be answered as one).
type PacketAddr struct {
	raw unix.RawSockaddrInet6 // large enough for sockaddr_in too
	len uint32
}

// AddrPort returns the address as an IP and port, IPv4-mapped addresses
// unmapped; the zero AddrPort if it is neither IPv4 nor IPv6.
func (a *PacketAddr) AddrPort() netip.AddrPort {
	switch a.raw.Family {
	case unix.AF_INET:
		r := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(r.Addr), ntohs(r.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.raw.Addr).Unmap(), ntohs(a.raw.Port))
	}
	return netip.AddrPort{}
}

func ntohs(p uint16) uint16 { return p>>8 | p<<8 }

// SetAddrPort makes a the address ap, as a socket of the family inet6 says
// takes it: to an IPv6 socket an IPv4 address goes IPv4-mapped.
func (a *PacketAddr) SetAddrPort(ap netip.AddrPort, inet6 bool) {
	port := ntohs(ap.Port()) // the swap is its own inverse
	if inet6 {
		a.raw = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port, Addr: ap.Addr().As16()}
		a.len = unix.SizeofSockaddrInet6
		return
	}
	a.raw = unix.RawSockaddrInet6{}
	*(*unix.RawSockaddrInet4)(unsafe.Pointer(&a.raw)) = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: port, Addr: ap.Addr().Unmap().As4()}
	a.len = unix.SizeofSockaddrInet4
}

// SendTo sends p as one datagram from the socket fd to a, like sendto(2).
func SendTo(fd int, p []byte, a *PacketAddr) error {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(base), uintptr(len(p)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&a.raw)), uintptr(a.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// DatagramBatch receives several datagrams with one recvmmsg(2): on a
// listening socket that many clients share, one system call per batch
// rather than per datagram.
type DatagramBatch struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	addrs []PacketAddr
	bufs  [][]byte
}

// NewDatagramBatch makes a batch of n datagrams of up to size bytes each.
// Its memory (n × size) is allocated once.
func NewDatagramBatch(n, size int) *DatagramBatch {
	b := &DatagramBatch{
		msgs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		addrs: make([]PacketAddr, n),
		bufs:  make([][]byte, n),
	}
	mem := make([]byte, n*size)
	for i := range b.msgs {
		b.bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		h := &b.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.addrs[i].raw))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	return b
}

// Recv reads up to the batch's size of datagrams from fd without blocking
// and returns how many; unix.EAGAIN means none was waiting.
func (b *DatagramBatch) Recv(fd int) (int, error) {
	for i := range b.msgs {
		// The kernel writes back the name length and flags: reset both.
		b.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.msgs[i].Hdr.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])),
		uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	for i := 0; i < int(n); i++ {
		b.addrs[i].len = b.msgs[i].Hdr.Namelen
	}
	return int(n), nil
}

// Datagram returns the i-th datagram of the last Recv and its source; the
// data is valid until the next Recv. truncated says the datagram was longer
// than the batch's size and lost its tail.
func (b *DatagramBatch) Datagram(i int) (data []byte, from *PacketAddr, truncated bool) {
	m := &b.msgs[i]
	return b.bufs[i][:m.Len], &b.addrs[i], m.Hdr.Flags&unix.MSG_TRUNC != 0
}
