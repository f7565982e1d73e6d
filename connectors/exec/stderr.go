package exec

import (
	"fmt"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// Limits on a child's standard error, so that a child writing endlessly
// costs bounded memory and log volume.
const (
	// MaxLineLength is where a line is cut; the rest, up to its newline,
	// is dropped.
	MaxLineLength = 4096
	// lineBurst lines may be logged at once, then lineRate per second.
	lineBurst = 20
	lineRate  = 10
	// readRounds bounds the reads per readiness event, so that a chatty
	// child cannot hold the loop.
	readRounds = 4
)

// stderrLog reads a child's standard error and logs it line by line.
type stderrLog struct {
	ch      *child
	s       *loop.Socket
	emit    func(line []byte, cut bool) // log, or a test's collector
	buf     []byte                      // the line being read; allocated on first output
	cutting bool                        // dropping the rest of a line that was cut
	tokens  float64
	refill  time.Time
	dropped int // lines not logged for the rate limit since the last one logged
}

// Readable reads what the child wrote, logs complete lines, and closes the
// pipe at EOF (logging a last unterminated line).
func (e *stderrLog) Readable(s *loop.Socket) {
	e.start()
	for range readRounds {
		n, err := unix.Read(s.Fd(), e.buf[len(e.buf):cap(e.buf)])
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if n <= 0 {
			e.close()
			return
		}
		e.buf = e.buf[:len(e.buf)+n]
		e.lines()
	}
}

// start allocates the line buffer on the child's first output.
func (e *stderrLog) start() {
	if e.buf == nil {
		e.buf = make([]byte, 0, MaxLineLength)
		e.tokens, e.refill = lineBurst, time.Now()
	}
}

// Writable is never watched on the stderr pipe.
func (e *stderrLog) Writable(*loop.Socket) {}

// lines logs every complete line in buf, and a full buf as a cut line.
func (e *stderrLog) lines() {
	start := 0
	for i, b := range e.buf {
		if b != '\n' {
			continue
		}
		if !e.cutting {
			e.emit(e.buf[start:i], false)
		}
		e.cutting = false
		start = i + 1
	}
	rest := copy(e.buf, e.buf[start:])
	e.buf = e.buf[:rest]
	if rest == cap(e.buf) {
		if !e.cutting {
			e.emit(e.buf, true)
		}
		e.cutting = true
		e.buf = e.buf[:0]
	}
}

func (e *stderrLog) close() {
	if len(e.buf) > 0 && !e.cutting {
		e.emit(e.buf, false)
	}
	e.buf = e.buf[:0]
	e.flushDropped()
	e.ch.l.Close(e.s)
}

// log logs one line at notice level if the rate limit allows it: a token
// bucket of lineBurst, refilled at lineRate per second.
func (e *stderrLog) log(line []byte, cut bool) {
	now := time.Now()
	e.tokens = min(lineBurst, e.tokens+now.Sub(e.refill).Seconds()*lineRate)
	e.refill = now
	if e.tokens < 1 {
		e.dropped++
		return
	}
	e.tokens--
	e.flushDropped()
	msg := fmt.Sprintf("%s: stderr: %s", e.ch.nick, line)
	if cut {
		msg += " [cut at 4096 bytes]"
	}
	e.ch.l.Logger().Log(nil, loop.LevelNotice, msg)
}

func (e *stderrLog) flushDropped() {
	if e.dropped > 0 {
		e.ch.l.Logger().Log(nil, loop.LevelNotice, fmt.Sprintf("%s: stderr: %d lines not logged (more than %d a second)", e.ch.nick, e.dropped, lineRate))
		e.dropped = 0
	}
}
