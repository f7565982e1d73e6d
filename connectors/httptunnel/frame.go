package httptunnel

import (
	"fmt"
)

// The opcodes of GNU httptunnel's frames (docs/httptunnel.md). Those with
// simpleBit set are one byte long; the others carry a 16-bit big-endian
// length and that many bytes.
const (
	opOpen       byte = 0x01
	opData       byte = 0x02
	opPadding    byte = 0x03
	opError      byte = 0x04
	opPad1       byte = 0x45
	opClose      byte = 0x46
	opDisconnect byte = 0x47

	simpleBit = 0x40
	// headerLen is the size of a long frame's opcode and length.
	headerLen = 3
	// maxFrame is the most a long frame can carry.
	maxFrame = 0xffff
	// maxData is the most nproxy puts in one DATA frame. hts and htc read
	// 10240 bytes at a time and keep the rest of a longer frame in a
	// buffer that they also clear whenever their own output request is
	// replaced: the rest of a longer frame would be lost then. They never
	// send longer ones themselves.
	maxData = 10240
	// maxErrorText is how much of an ERROR frame's message is kept for
	// the log; the rest is read and dropped.
	maxErrorText = 200
)

// openFrame is the OPEN frame htc sends: one byte of "auth data" that no
// server reads.
var openFrame = []byte{opOpen, 0, 1, 42}

// event is what the decoder reports besides payload.
type event uint8

const (
	evNone       event = iota
	evOpen             // an OPEN frame ended
	evClose            // CLOSE: the peer sends no more data
	evDisconnect       // DISCONNECT: this body is over
	evMux              // an opMux frame ended: its payload is in msg
)

// decoder parses frames incrementally: bytes may arrive split anywhere.
// Its zero value expects an opcode.
type decoder struct {
	state uint8 // 0 opcode, 1 length high, 2 length low, 3 body
	op    byte
	left  int // body bytes still to come
	msg   [maxErrorText]byte
	msgN  int
}

// ErrorFrame is the failure a peer reported with an ERROR frame.
type ErrorFrame string

func (e ErrorFrame) Error() string { return "peer reported an error: " + string(e) }

// decode consumes frames from in, writing DATA payload to out, which may
// overlap in as long as it starts at or before it (the payload of a frame
// is never longer than the frame). It stops after an event, so that the
// caller acts on it before later bytes: used is what it consumed, n what it
// wrote. An unknown opcode or an ERROR frame is an error.
func (d *decoder) decode(in, out []byte) (used, n int, ev event, err error) {
	for used < len(in) {
		b := in[used]
		switch d.state {
		case 0:
			used++
			d.op = b
			switch {
			case b&simpleBit != 0:
				if ev, err = simpleEvent(b); err != nil || ev != evNone {
					return used, n, ev, err
				}
			case b >= opOpen && b <= opError || b == opMux:
				d.state = 1
			default:
				return used, n, evNone, fmt.Errorf("unknown opcode 0x%02x", b)
			}
		case 1:
			used++
			d.left = int(b) << 8
			d.state = 2
		case 2:
			used++
			d.left |= int(b)
			d.state = 3
			d.msgN = 0
			if d.left == 0 {
				if ev, err = d.frameEnd(); err != nil || ev != evNone {
					return used, n, ev, err
				}
			}
		case 3:
			k := min(d.left, len(in)-used)
			switch d.op {
			case opData:
				n += copy(out[n:], in[used:used+k])
			case opError, opMux:
				d.msgN += copy(d.msg[d.msgN:], in[used:used+k])
			}
			used += k
			d.left -= k
			if d.left == 0 {
				if ev, err = d.frameEnd(); err != nil || ev != evNone {
					return used, n, ev, err
				}
			}
		}
	}
	return used, n, evNone, nil
}

// frameEnd closes a long frame.
func (d *decoder) frameEnd() (event, error) {
	d.state = 0
	switch d.op {
	case opOpen:
		return evOpen, nil
	case opError:
		return evNone, ErrorFrame(d.msg[:d.msgN])
	case opMux:
		return evMux, nil
	}
	return evNone, nil
}

func simpleEvent(op byte) (event, error) {
	switch op {
	case opPad1:
		return evNone, nil
	case opClose:
		return evClose, nil
	case opDisconnect:
		return evDisconnect, nil
	}
	return evNone, fmt.Errorf("unknown opcode 0x%02x", op)
}

// appendData appends a DATA frame carrying n bytes (at most maxFrame) from
// offset off of head and body taken as one run: a mux session's frame
// header and its stream's bytes are framed without being joined first.
func appendData(b, head, body []byte, off, n int) []byte {
	return appendSpan(append(b, opData, byte(n>>8), byte(n)), head, body, off, n)
}

// appendSpan appends n bytes from offset off of head and body taken as one
// run.
func appendSpan(b, head, body []byte, off, n int) []byte {
	if off < len(head) {
		k := min(n, len(head)-off)
		b = append(b, head[off:off+k]...)
		off, n = len(head), n-k
	}
	off -= len(head)
	return append(b, body[off:off+n]...)
}

// appendPadding appends exactly n bytes of padding: PAD1s when a PADDING
// frame would not fit, as GNU does.
func appendPadding(b []byte, n int) []byte {
	for n > 0 {
		if n <= headerLen {
			for ; n > 0; n-- {
				b = append(b, opPad1)
			}
			return b
		}
		k := min(n-headerLen, maxFrame)
		b = append(b, opPadding, byte(k>>8), byte(k))
		for i := 0; i < k; i++ {
			b = append(b, 0)
		}
		n -= headerLen + k
	}
	return b
}
