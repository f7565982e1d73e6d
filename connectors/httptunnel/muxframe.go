package httptunnel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Mux frames (docs/httptunnel-mux.md) ride in the payload of a tunnel
// between two nproxies: a 7-byte header, then the payload.
//
//	type(1) stream(4, big-endian) length(2, big-endian) payload(length)
const (
	muxOpen   byte = 1 // the client opens stream (odd ids, increasing)
	muxData   byte = 2 // payload for stream, within its window
	muxWindow byte = 3 // 4-byte increment of stream's window
	muxFin    byte = 4 // stream sends no more (half-close)
	muxRst    byte = 5 // stream is over, both ways

	muxHeader = 7
	// muxWindowSize is each stream's receive window: the most a receiver
	// holds for a stream its reader does not read.
	muxWindowSize = 256 << 10
	// muxMaxData bounds one DATA frame.
	muxMaxData = 16 << 10
)

// opMux replaces OPEN as the first frame of a mux session's first POST.
// GNU hts does not know it and drops the tunnel ("unknown request"),
// so a mux client never talks to it by mistake.
const opMux byte = 0x08

// muxMagic starts opMux's payload, then a 16-byte nonce and the
// HMAC-SHA256 of the nonce under the shared key.
const muxMagic = "nproxy-mux/1"

const helloLen = len(muxMagic) + 16 + sha256.Size

// muxHello is the opMux frame for key.
func muxHello(key string) []byte {
	var nonce [16]byte
	rand.Read(nonce[:])
	b := []byte{opMux, 0, byte(helloLen)}
	b = append(b, muxMagic...)
	b = append(b, nonce[:]...)
	return append(b, mac(key, nonce[:])...)
}

func mac(key string, nonce []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(nonce)
	return m.Sum(nil)
}

var errWrongKey = errors.New("mux client with a wrong key")

// checkHello verifies opMux's payload.
func checkHello(key string, p []byte) error {
	if len(p) != helloLen || string(p[:len(muxMagic)]) != muxMagic {
		return errors.New("malformed mux hello")
	}
	nonce := p[len(muxMagic) : len(muxMagic)+16]
	if !hmac.Equal(p[len(muxMagic)+16:], mac(key, nonce)) {
		return errWrongKey
	}
	return nil
}

// muxFrame is one parsed frame; payload points into the parser's buffer.
type muxFrame struct {
	typ     byte
	stream  uint32
	payload []byte
}

// parseMux parses the first frame of b: ok is false while it is
// incomplete.
func parseMux(b []byte) (f muxFrame, size int, ok bool, err error) {
	if len(b) < muxHeader {
		return f, 0, false, nil
	}
	f.typ = b[0]
	f.stream = binary.BigEndian.Uint32(b[1:5])
	n := int(binary.BigEndian.Uint16(b[5:7]))
	if f.typ < muxOpen || f.typ > muxRst {
		return f, 0, false, fmt.Errorf("unknown mux frame type %d", f.typ)
	}
	if f.typ == muxData && n > muxMaxData || f.typ == muxWindow && n != 4 || f.stream == 0 {
		return f, 0, false, fmt.Errorf("malformed mux frame (type %d, stream %d, length %d)", f.typ, f.stream, n)
	}
	if len(b) < muxHeader+n {
		return f, 0, false, nil
	}
	f.payload = b[muxHeader : muxHeader+n]
	return f, muxHeader + n, true, nil
}

// appendMux appends a frame.
func appendMux(b []byte, typ byte, stream uint32, payload []byte) []byte {
	var h [muxHeader]byte
	putMuxHeader(h[:], typ, stream, len(payload))
	b = append(b, h[:]...)
	return append(b, payload...)
}

// putMuxHeader writes a frame's header into h.
func putMuxHeader(h []byte, typ byte, stream uint32, n int) {
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:5], stream)
	binary.BigEndian.PutUint16(h[5:7], uint16(n))
}

// windowIncrement is a WINDOW frame's payload.
func windowIncrement(inc int) (p [4]byte) {
	binary.BigEndian.PutUint32(p[:], uint32(inc))
	return p
}
