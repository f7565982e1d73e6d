package httptunnel

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// A mux session may ride on one WebSocket (RFC 6455) instead of request
// pairs, where nothing in the path refuses an Upgrade. nproxy frames
// WebSocket itself: the libraries all want a goroutine and a blocking
// net.Conn per connection, and this runs on the loop.

// wsGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsPath is where a mux client asks for the upgrade.
const wsPath = "/nproxy-mux"

// wsMaxFrame bounds the frames nproxy sends; frames it reads may be any
// length (they are read piecewise), but control frames at most 125 bytes.
const wsMaxFrame = 64 << 10

// WebSocket opcodes.
const (
	wsCont   = 0x0
	wsBinary = 0x2
	wsClose  = 0x8
	wsPing   = 0x9
	wsPong   = 0xa
)

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func wsKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// wsConn is the loop.Transport (and loop.Flusher) of a WebSocket: binary
// messages carry the session's bytes. The client masks what it sends,
// the server what it reads is masked. Under TLS the frames go through the
// socket's TLS transport (under), which wakes the socket's handler itself
// when it holds plaintext or has room again.
type wsConn struct {
	s      *loop.Socket
	client bool
	under  loop.Transport // TLS, or nil: the fd

	raw    []byte // bytes read from the fd, not yet decoded
	rawOff int
	// The frame being read.
	left    uint64
	mask    [4]byte
	masked  bool
	maskPos int
	op      byte
	inFrame bool
	ctl     []byte // a control frame's payload
	eof     bool

	out    []byte
	outOff int
}

func newWS(s *loop.Socket, client bool, rest []byte) *wsConn {
	w := &wsConn{s: s, client: client, under: s.Transport(), raw: make([]byte, 0, 64<<10)}
	w.raw = append(w.raw, rest...)
	s.SetTransport(w)
	return w
}

// Recv implements loop.Transport: the payload of binary frames.
func (w *wsConn) Recv(p []byte) (int, error) {
	for {
		n, err := w.decode(p)
		if w.Buffered() > 0 {
			w.Flush() // a pong
		}
		if n > 0 || err != nil {
			return n, err
		}
		if w.eof {
			return 0, nil
		}
		if w.rawOff > 0 {
			w.raw = w.raw[:copy(w.raw, w.raw[w.rawOff:])]
			w.rawOff = 0
		}
		m, rerr := w.recv(w.raw[len(w.raw):cap(w.raw)])
		switch {
		case rerr != nil:
			return 0, rerr
		case m == 0:
			if len(w.raw) > 0 || w.left > 0 {
				return 0, errors.New("WebSocket ended inside a frame")
			}
			return 0, nil
		}
		w.raw = w.raw[:len(w.raw)+m]
	}
}

// recv reads frames' bytes from TLS or the fd.
func (w *wsConn) recv(p []byte) (int, error) {
	if w.under != nil {
		return w.under.Recv(p)
	}
	return unix.Read(w.s.Fd(), p)
}

// decode takes payload from raw into p; (0, nil) means more raw is needed.
func (w *wsConn) decode(p []byte) (int, error) {
	for !w.eof {
		if !w.inFrame {
			if ok, err := w.header(); err != nil || !ok {
				return 0, err
			}
			if w.left == 0 {
				w.endFrame()
				continue
			}
		}
		k := int(min(w.left, uint64(len(w.raw)-w.rawOff)))
		data := w.op == wsBinary || w.op == wsCont
		if data {
			k = min(k, len(p))
		}
		if k == 0 {
			return 0, nil
		}
		b := w.raw[w.rawOff : w.rawOff+k]
		if w.masked {
			w.unmask(b)
		}
		w.rawOff += k
		w.left -= uint64(k)
		if data {
			if w.left == 0 {
				w.inFrame = false
			}
			return copy(p, b), nil
		}
		w.ctl = append(w.ctl, b...)
		if w.left == 0 {
			w.endFrame()
		}
	}
	return 0, nil
}

// header parses a frame header from raw; false means it is not all there.
func (w *wsConn) header() (bool, error) {
	b := w.raw[w.rawOff:]
	if len(b) < 2 {
		return false, nil
	}
	op, masked, n := b[0]&0x0f, b[1]&0x80 != 0, uint64(b[1]&0x7f)
	size := 2
	switch n {
	case 126:
		size = 4
	case 127:
		size = 10
	}
	if masked {
		size += 4
	}
	if len(b) < size {
		return false, nil
	}
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		n = binary.BigEndian.Uint64(b[2:10])
	}
	switch {
	case masked == w.client:
		return false, errors.New("WebSocket frame masked the wrong way")
	case op >= wsClose && (n > 125 || b[0]&0x80 == 0):
		return false, errors.New("malformed WebSocket control frame")
	case op != wsBinary && op != wsCont && op < wsClose, op > wsPong:
		return false, fmt.Errorf("unexpected WebSocket opcode %d", op)
	}
	if masked {
		copy(w.mask[:], b[size-4:size])
	}
	w.masked, w.maskPos, w.op, w.left, w.ctl = masked, 0, op, n, w.ctl[:0]
	w.inFrame = true
	w.rawOff += size
	return true, nil
}

// unmask unmasks b, the next bytes of the frame being read.
func (w *wsConn) unmask(b []byte) {
	for len(b) > 0 && w.maskPos&3 != 0 {
		b[0] ^= w.mask[w.maskPos&3]
		b = b[1:]
		w.maskPos++
	}
	n := len(b) &^ 3
	xorMask(b[:n], w.mask)
	w.maskPos += n
	for i := range b[n:] {
		b[n+i] ^= w.mask[w.maskPos&3]
		w.maskPos++
	}
}

// xorMask applies mask to b from its first byte on, eight bytes at a time
// (masking is most of a WebSocket's cost on the loop).
func xorMask(b []byte, mask [4]byte) {
	m4 := binary.LittleEndian.Uint32(mask[:])
	m8 := uint64(m4) | uint64(m4)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^m8)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

// endFrame ends the frame being read, acting on a control frame.
func (w *wsConn) endFrame() {
	w.inFrame = false
	switch w.op {
	case wsClose:
		w.eof = true
	case wsPing:
		w.frame(wsPong, w.ctl) // sent by Recv
	}
}

// frame appends a frame, masked by a client.
func (w *wsConn) frame(op byte, p []byte) {
	h := []byte{0x80 | op, 0}
	switch n := len(p); {
	case n < 126:
		h[1] = byte(n)
	case n < 1<<16:
		h[1] = 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	if !w.client {
		w.out = append(append(w.out, h...), p...)
		return
	}
	h[1] |= 0x80
	var mask [4]byte
	rand.Read(mask[:])
	w.out = append(append(w.out, h...), mask[:]...)
	start := len(w.out)
	w.out = append(w.out, p...)
	xorMask(w.out[start:], mask)
}

// Send implements loop.Transport: binary frames, as much as the output
// buffer takes.
func (w *wsConn) Send(p []byte) (int, error) {
	room := bufSize - (len(w.out) - w.outOff)
	if room <= 16 {
		w.Flush()
		return 0, unix.EAGAIN
	}
	n := min(len(p), room-16, wsMaxFrame)
	w.frame(wsBinary, p[:n])
	if err := w.Flush(); err != nil && err != unix.EAGAIN {
		return 0, err
	}
	return n, nil
}

// Flush implements loop.Flusher: the frames, then what TLS holds.
func (w *wsConn) Flush() error {
	for w.outOff < len(w.out) {
		n, err := w.send(w.out[w.outOff:])
		if n > 0 {
			w.outOff += n
		}
		if err != nil {
			return err
		}
	}
	w.out, w.outOff = w.out[:0], 0
	if f, ok := w.under.(loop.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// send writes frames' bytes to TLS or the fd.
func (w *wsConn) send(p []byte) (int, error) {
	if w.under != nil {
		return w.under.Send(p)
	}
	return unix.Write(w.s.Fd(), p)
}

// Buffered implements loop.Flusher: frames not yet sent, and what TLS
// holds.
func (w *wsConn) Buffered() int {
	n := len(w.out) - w.outOff
	if f, ok := w.under.(loop.Flusher); ok {
		n += f.Buffered()
	}
	return n
}

// FdBlocked implements loop.Flusher: what is held waits for the fd, but
// under TLS only while TLS says so (it notifies when its engine has room).
func (w *wsConn) FdBlocked() bool {
	if f, ok := w.under.(loop.Flusher); ok {
		return f.FdBlocked()
	}
	return true
}

// CloseWrite implements loop.Transport: a close frame.
func (w *wsConn) CloseWrite() error {
	w.frame(wsClose, nil)
	return w.Flush()
}

// Close implements loop.Transport: TLS's too.
func (w *wsConn) Close() error {
	if w.under != nil {
		return w.under.Close()
	}
	return nil
}
