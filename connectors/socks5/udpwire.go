package socks5

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// maxName is the longest DNS name (RFC 1035's 255 octets on the wire are at
// most 253 characters written out): a longer one cannot resolve.
const maxName = 253

// udpHeader is the header of a datagram between a client and its UDP relay
// (RFC 1928 §7): RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT.
type udpHeader struct {
	frag byte
	addr netip.Addr // the destination, when an address (ATYP 1 or 4)
	name []byte     // or its name (ATYP 3), inside the datagram
	port uint16
}

// Why a datagram from a client is dropped before its destination is known.
var (
	errUDPShort = errors.New("datagram shorter than its SOCKS header")
	errUDPName  = errors.New("bad destination name in the SOCKS header")
)

// parseUDPHeader splits a datagram from a client into its header and data,
// without allocating: a name stays in the datagram.
func parseUDPHeader(d []byte) (h udpHeader, data []byte, err error) {
	if len(d) < 4 {
		return h, nil, errUDPShort
	}
	h.frag = d[2]
	n, err := addrSpan(d[3:])
	if err != nil {
		return h, nil, err
	}
	if n == 0 || len(d) < 3+n {
		return h, nil, errUDPShort
	}
	a := d[3 : 3+n]
	switch a[0] {
	case atypIPv4:
		h.addr = netip.AddrFrom4([4]byte(a[1:5]))
	case atypIPv6:
		h.addr = netip.AddrFrom16([16]byte(a[1:17])).Unmap()
	default:
		h.name = a[2 : n-2]
		if len(h.name) > maxName || !validName(string(h.name)) {
			return h, nil, errUDPName
		}
	}
	h.port = binary.BigEndian.Uint16(a[n-2:])
	return h, d[3+n:], nil
}

// appendUDPHeader appends the header of a datagram from src to a client.
func appendUDPHeader(b []byte, src netip.AddrPort) []byte {
	return appendAddrPort(append(b, 0, 0, 0), src)
}
