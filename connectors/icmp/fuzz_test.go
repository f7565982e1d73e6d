package icmp

import (
	"bytes"
	"testing"
)

func encodeSeed(p packet) []byte {
	var buf [maxPacket]byte
	return append([]byte(nil), encode(buf[:], &p, 7)...)
}

// FuzzDecode feeds the decoder raw IP packets, as the raw socket does: it
// must never panic, and what it accepts must survive a re-encoding.
func FuzzDecode(f *testing.F) {
	ipHeader := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}
	for _, p := range []packet{
		{icmpType: echoRequest, state: stateStart, flag: userFlag, dstIP: [4]byte{127, 0, 0, 1}, dstPort: 22, ack: 65535, id: 9},
		{icmpType: echoReply, state: stateData, flag: proxyFlag, seq: 3, ack: 2, id: 9, data: []byte("hello")},
		{icmpType: echoReply, state: stateAuth, flag: proxyFlag, data: make([]byte, challengeLn)},
	} {
		f.Add(append(append([]byte(nil), ipHeader...), encodeSeed(p)...))
	}
	f.Add(append(append([]byte(nil), ipHeader...), 8, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, _, err := stripIP(b)
		if err != nil {
			return
		}
		p, err := decode(msg)
		if err != nil {
			return
		}
		if len(p.data) > maxData {
			t.Fatalf("decode accepted %d bytes of data", len(p.data))
		}
		again, err := decode(encodeSeed(p))
		if err != nil || again.seq != p.seq || again.ack != p.ack || again.id != p.id ||
			again.state != p.state || again.flag != p.flag || !bytes.Equal(again.data, p.data) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", p, again, err)
		}
	})
}

func TestChecksum(t *testing.T) {
	b := encodeSeed(packet{icmpType: echoRequest, state: stateData, flag: userFlag, data: []byte("odd")})
	if len(b)%2 != 0 {
		t.Fatalf("packet of odd length %d", len(b))
	}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Fatalf("checksum does not verify: %#x", sum)
	}
}

func TestResponse(t *testing.T) {
	challenge := bytes.Repeat([]byte{1}, challengeLn)
	r := response(challenge, "pw")
	if !validResponse(challenge, r[:], "pw") || validResponse(challenge, r[:], "other") {
		t.Fatal("response does not validate as it should")
	}
	if !bytes.Equal(r[16:], make([]byte, 16)) {
		t.Fatal("the response's last 16 bytes must be zero, as ptunnel sends them")
	}
}
