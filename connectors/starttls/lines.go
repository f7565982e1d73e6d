package starttls

import (
	"bytes"
	"errors"
	"fmt"
)

// maxLine bounds a client's command line, CR LF included: SMTP's own limit
// is 512 (RFC 5321), and none of the commands answered before TLS needs more.
const maxLine = 1024

// maxCommands bounds the commands a client may send before STARTTLS; the
// next one gets the protocol's closing line instead of an answer.
const maxCommands = 10

// maxGreeting bounds the real server's greeting, which nproxy drops.
const maxGreeting = 4096

var errTooLong = fmt.Errorf("command line longer than %d bytes", maxLine)

// lineEnd returns how many bytes of p belong to the line being read: up to
// and including the first LF. Bytes after it are not taken from the
// socket: after STARTTLS they are the client's TLS handshake.
func lineEnd(p []byte) int {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return i + 1
	}
	return len(p)
}

// lineBuf gathers a command line from the pieces lineEnd allows.
type lineBuf struct {
	b []byte
}

// add appends p, which holds at most one LF, at its end. It returns the
// complete line without its LF (or CR LF), or nil while the line goes on.
func (l *lineBuf) add(p []byte) ([]byte, error) {
	l.b = append(l.b, p...)
	if len(l.b) == 0 || l.b[len(l.b)-1] != '\n' {
		if len(l.b) >= maxLine {
			return nil, errTooLong
		}
		return nil, nil
	}
	if len(l.b) > maxLine {
		return nil, errTooLong
	}
	line := bytes.TrimSuffix(l.b[:len(l.b)-1], []byte("\r"))
	l.b = l.b[:0]
	return line, nil
}

// room is how many bytes the line can still take before it is too long:
// peeking one more than that tells a full line from an overlong one.
func (l *lineBuf) room() int { return maxLine - len(l.b) }

var errGreetingTooLong = fmt.Errorf("the server's greeting is longer than %d bytes", maxGreeting)

// greeting recognises the real server's greeting on its way to the client
// (see serverLine), so that it can be dropped.
type greeting struct {
	d    *dialect
	line []byte
	seen int
}

// take consumes the greeting's bytes at the start of p and reports how many
// there were and whether the greeting is over; the bytes after it belong to
// the client. A greeting the dialect does not accept is an error that
// quotes it.
func (g *greeting) take(p []byte) (n int, done bool, err error) {
	for n < len(p) {
		k := lineEnd(p[n:])
		if g.seen+k > maxGreeting {
			return n, false, errGreetingTooLong
		}
		g.line = append(g.line, p[n:n+k]...)
		g.seen += k
		n += k
		if g.line[len(g.line)-1] != '\n' {
			return n, false, nil
		}
		line := bytes.TrimSuffix(g.line[:len(g.line)-1], []byte("\r"))
		ok, last := g.d.serverLine(line)
		if !ok {
			return n, false, &badGreetingError{line: string(line)}
		}
		g.line = g.line[:0]
		if last {
			return n, true, nil
		}
	}
	return n, false, nil
}

// badGreetingError is a server greeting that refuses the client or is not
// the protocol's.
type badGreetingError struct{ line string }

func (e *badGreetingError) Error() string {
	return fmt.Sprintf("the server greeted with %.100q, not the protocol's welcome", e.line)
}

var errNoGreeting = errors.New("the server sent no greeting in time")
