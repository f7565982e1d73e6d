package loop

import "golang.org/x/sys/unix"

// Scope returns the scope (interface index) of an IPv6 link-local address,
// which AddrPort leaves out; 0 for any other address. A flow table that
// keeps a client's address compactly keeps it too, so that a reply to a
// link-local client still leaves by the right interface.
func (a *PacketAddr) Scope() uint32 {
	if a.raw.Family != unix.AF_INET6 {
		return 0
	}
	return a.raw.Scope_id
}

// SetScope sets the scope of an IPv6 address made by SetAddrPort; it does
// nothing to an IPv4 one.
func (a *PacketAddr) SetScope(id uint32) {
	if a.raw.Family == unix.AF_INET6 {
		a.raw.Scope_id = id
	}
}
