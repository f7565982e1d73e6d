package icmp

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// PingTunnel 0.72's constants (see docs/icmp.md).
const (
	magic       = 0xD5200880
	userFlag    = 1 << 30 // set in packets from the client
	proxyFlag   = 1 << 31 // set in packets from the proxy
	flagMask    = userFlag | proxyFlag
	icmpHeader  = 8
	tunHeader   = 28
	headerLen   = icmpHeader + tunHeader
	maxData     = 1024 // ptunnel's receive buffer: more makes it exit
	maxPacket   = headerLen + maxData + 1
	window      = 64 // packets awaiting an ack, and the receive window
	echoRequest = 8
	echoReply   = 0
	challengeLn = 32
)

// The states of the protocol, in the low bits of the state field.
const (
	stateStart uint32 = iota
	stateAck
	stateData
	stateClose
	stateAuth
	numStates
)

var stateNames = [numStates]string{"start", "ack", "data", "close", "authenticate"}

// packet is a decoded ptunnel packet; data aliases the buffer it came from.
type packet struct {
	icmpType uint8
	icmpID   uint16
	dstIP    [4]byte
	dstPort  uint32
	state    uint32 // without the flags
	flag     uint32
	ack      uint16
	seq      uint16
	id       uint16
	data     []byte
}

var (
	errShort    = errors.New("shorter than a ptunnel header")
	errMagic    = errors.New("not a ptunnel packet")
	errState    = errors.New("unknown state")
	errDataLen  = errors.New("data length beyond the packet or 1024 bytes")
	errIPHeader = errors.New("bad IP header")
)

// stripIP returns the ICMP message of a packet read from a raw IPv4 socket,
// which always comes with its IP header, and the source address.
func stripIP(b []byte) (icmp []byte, src [4]byte, err error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, src, errIPHeader
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return nil, src, errIPHeader
	}
	copy(src[:], b[12:16])
	return b[ihl:], src, nil
}

// decode parses an ICMP message holding a ptunnel packet. It accepts no
// data length beyond the message or maxData.
func decode(b []byte) (packet, error) {
	var p packet
	if len(b) < headerLen {
		return p, errShort
	}
	t := b[icmpHeader:]
	if binary.BigEndian.Uint32(t) != magic {
		return p, errMagic
	}
	p.icmpType = b[0]
	p.icmpID = binary.BigEndian.Uint16(b[4:])
	copy(p.dstIP[:], t[4:8])
	p.dstPort = binary.BigEndian.Uint32(t[8:])
	state := binary.BigEndian.Uint32(t[12:])
	p.flag, p.state = state&flagMask, state&^flagMask
	if p.state >= numStates {
		return p, errState
	}
	// ptunnel writes ack as next_expected-1 into 32 bits: only the low 16 count.
	p.ack = uint16(binary.BigEndian.Uint32(t[16:]))
	n := binary.BigEndian.Uint32(t[20:])
	if n > maxData || int(n) > len(t)-tunHeader {
		return p, errDataLen
	}
	p.seq = binary.BigEndian.Uint16(t[24:])
	p.id = binary.BigEndian.Uint16(t[26:])
	p.data = t[tunHeader : tunHeader+int(n)]
	return p, nil
}

// encode writes p into buf (at least maxPacket bytes) as an ICMP echo
// message with its checksum, padded to an even length as ptunnel expects,
// and returns it.
func encode(buf []byte, p *packet, icmpSeq uint16) []byte {
	n := headerLen + len(p.data)
	if n%2 == 1 {
		buf[n] = 0
		n++
	}
	b := buf[:n]
	b[0], b[1] = p.icmpType, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], p.icmpID)
	binary.BigEndian.PutUint16(b[6:], icmpSeq)
	t := b[icmpHeader:]
	binary.BigEndian.PutUint32(t, magic)
	copy(t[4:8], p.dstIP[:])
	binary.BigEndian.PutUint32(t[8:], p.dstPort)
	binary.BigEndian.PutUint32(t[12:], p.state|p.flag)
	binary.BigEndian.PutUint32(t[16:], uint32(p.ack))
	binary.BigEndian.PutUint32(t[20:], uint32(len(p.data)))
	binary.BigEndian.PutUint16(t[24:], p.seq)
	binary.BigEndian.PutUint16(t[26:], p.id)
	copy(t[tunHeader:], p.data)
	setChecksum(b)
	return b
}

// setChecksum fills in the ICMP checksum of b (an even length), the
// Internet checksum of RFC 1071.
func setChecksum(b []byte) {
	binary.BigEndian.PutUint16(b[2:], 0)
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
}

// setICMPSeq changes the ICMP sequence of an encoded packet, as a resend
// does, and its checksum with it.
func setICMPSeq(b []byte, icmpSeq uint16) {
	binary.BigEndian.PutUint16(b[6:], icmpSeq)
	setChecksum(b)
}

// response computes ptunnel's answer to a challenge: MD5(challenge ‖
// MD5(password)), then 16 zero bytes.
func response(challenge []byte, password string) [challengeLn]byte {
	digest := md5.Sum([]byte(password))
	h := md5.New()
	h.Write(challenge)
	h.Write(digest[:])
	var r [challengeLn]byte
	h.Sum(r[:0])
	return r
}

// validResponse reports whether got answers challenge for password.
func validResponse(challenge, got []byte, password string) bool {
	want := response(challenge, password)
	return len(got) == challengeLn && subtle.ConstantTimeCompare(want[:], got) == 1
}
