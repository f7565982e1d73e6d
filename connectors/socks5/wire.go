package socks5

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Wire constants of RFC 1928 and RFC 1929.
const (
	version     = 5
	authVersion = 1

	methodNone     = 0x00
	methodPassword = 0x02
	methodRefused  = 0xff

	cmdConnect   = 1
	cmdBind      = 2
	cmdAssociate = 3

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4
)

// Reply codes (RFC 1928 §6).
const (
	repSucceeded        = 0x00
	repFailure          = 0x01
	repNotAllowed       = 0x02
	repNetUnreachable   = 0x03
	repHostUnreachable  = 0x04
	repRefused          = 0x05
	repTTLExpired       = 0x06
	repCmdNotSupported  = 0x07
	repAtypNotSupported = 0x08
)

// replyError is a failure the server answers with a reply code.
type replyError struct {
	code byte
	msg  string
}

func (e *replyError) Error() string { return e.msg }

// errVersion is a first byte that is not SOCKS5's: there is no reply to give.
var errVersion = errors.New("not SOCKS5 (bad version byte)")

// parseGreeting reads VER NMETHODS METHODS from data: n is 0 while
// incomplete.
func parseGreeting(data []byte) (methods []byte, n int, err error) {
	if len(data) < 2 {
		return nil, 0, versionFirst(data, version)
	}
	if data[0] != version {
		return nil, 0, errVersion
	}
	n = 2 + int(data[1])
	if len(data) < n {
		return nil, 0, nil
	}
	return data[2:n], n, nil
}

func versionFirst(data []byte, v byte) error {
	if len(data) > 0 && data[0] != v {
		return errVersion
	}
	return nil
}

// parseAuth reads RFC 1929's VER ULEN UNAME PLEN PASSWD.
func parseAuth(data []byte) (user, pass string, n int, err error) {
	if len(data) < 2 {
		return "", "", 0, versionFirst(data, authVersion)
	}
	if data[0] != authVersion {
		return "", "", 0, errors.New("bad username/password version byte")
	}
	ulen := int(data[1])
	if len(data) < 3+ulen {
		return "", "", 0, nil
	}
	plen := int(data[2+ulen])
	n = 3 + ulen + plen
	if len(data) < n {
		return "", "", 0, nil
	}
	return string(data[2 : 2+ulen]), string(data[3+ulen : n]), n, nil
}

// request is a SOCKS5 request: a command and a destination.
type request struct {
	cmd  byte
	host string
	port int
}

// parseRequest reads VER CMD RSV ATYP DST.ADDR DST.PORT. Errors are
// replyErrors: the client is told.
func parseRequest(data []byte) (req request, n int, err error) {
	if len(data) < 5 {
		return req, 0, versionFirst(data, version)
	}
	if data[0] != version {
		return req, 0, errVersion
	}
	req.cmd = data[1]
	host, n, err := parseAddr(data[3:])
	if n == 0 || err != nil {
		return req, 0, err
	}
	req.host, req.port = host, int(binary.BigEndian.Uint16(data[3+n-2:]))
	return req, 3 + n, nil
}

// parseAddr reads ATYP ADDR PORT; n counts them all, 0 while incomplete.
func parseAddr(data []byte) (host string, n int, err error) {
	n, err = addrSpan(data)
	if n == 0 || err != nil || len(data) < n {
		return "", 0, err
	}
	switch data[0] {
	case atypIPv4:
		host = netip.AddrFrom4([4]byte(data[1:5])).String()
	case atypIPv6:
		host = netip.AddrFrom16([16]byte(data[1:17])).Unmap().String()
	default:
		host = string(data[2 : n-2])
		if !validName(host) {
			return "", 0, &replyError{repFailure, fmt.Sprintf("bad domain name %q", host)}
		}
	}
	return host, n, nil
}

// addrSpan returns the length of the ATYP ADDR PORT at the start of data
// (which may be shorter), 0 while ATYP or a name's length is missing.
func addrSpan(data []byte) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	switch data[0] {
	case atypIPv4:
		return 1 + 4 + 2, nil
	case atypIPv6:
		return 1 + 16 + 2, nil
	case atypDomain:
		if len(data) < 2 {
			return 0, nil
		}
		if data[1] == 0 {
			return 0, &replyError{repFailure, "empty domain name"}
		}
		return 1 + 1 + int(data[1]) + 2, nil
	}
	return 0, &replyError{repAtypNotSupported, fmt.Sprintf("address type %d not supported", data[0])}
}

// validName accepts what may be a host name: printable, no spaces, no
// NULs (a name goes to the resolver and into log lines).
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// appendAddr appends ATYP ADDR PORT for host:port; a name goes as a name.
func appendAddr(b []byte, host string, port int) ([]byte, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return appendAddrPort(b, netip.AddrPortFrom(a, uint16(port))), nil
	}
	if len(host) == 0 || len(host) > 255 {
		return nil, fmt.Errorf("host name %q cannot go in a SOCKS5 request (1 to 255 bytes)", host)
	}
	b = append(append(b, atypDomain, byte(len(host))), host...)
	return binary.BigEndian.AppendUint16(b, uint16(port)), nil
}

// appendAddrPort appends ATYP ADDR PORT for an IP address, without
// allocating (an IPv4-mapped address goes as IPv4).
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if a := ap.Addr().Unmap(); a.Is4() {
		a4 := a.As4()
		b = append(append(b, atypIPv4), a4[:]...)
	} else {
		a16 := a.As16()
		b = append(append(b, atypIPv6), a16[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// maxReply is the longest reply nproxy sends: one with an IPv6 address.
const maxReply = 3 + 1 + 16 + 2

// appendReply appends a server's reply, VER REP RSV ATYP BND.ADDR BND.PORT,
// without allocating; an invalid bound address goes as 0.0.0.0:0.
func appendReply(b []byte, code byte, bound netip.AddrPort) []byte {
	if !bound.IsValid() {
		bound = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return appendAddrPort(append(b, version, code, 0), bound)
}

// parseReply reads a server's reply; n is 0 while incomplete. The bound
// address is checked but not kept: nothing needs it.
func parseReply(data []byte) (code byte, n int, err error) {
	if len(data) < 4 {
		return 0, 0, versionFirst(data, version)
	}
	if data[0] != version {
		return 0, 0, errVersion
	}
	_, n, err = parseAddr(data[3:])
	if n == 0 || err != nil {
		return 0, 0, err
	}
	return data[1], 3 + n, nil
}
