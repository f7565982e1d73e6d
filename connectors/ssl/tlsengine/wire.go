package tlsengine

import (
	"errors"
	"io"
	"net"
	"time"
)

// errWouldBlock is what crypto/tls reads after the handshake when no
// ciphertext is queued. It is a temporary net.Error, which crypto/tls does
// not record as the connection's failure (as for a read deadline), so the
// next Read resumes where this one stopped and the reader goroutine can
// exit instead of waiting.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "no ciphertext queued" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// wire is the net.Conn crypto/tls runs over: reads take from the engine's
// ciphertext-in queue, writes fill its ciphertext-out queue.
type wire struct{ e *Engine }

// Read blocks only during the handshake, whose goroutine has nothing else
// to do; afterwards it returns errWouldBlock.
func (w wire) Read(p []byte) (int, error) {
	e := w.e
	e.mu.Lock()
	defer e.unlock()
	for {
		switch {
		case e.closed:
			return 0, net.ErrClosed
		case e.cin.len() > 0:
			n := e.cin.pull(p)
			if e.feedBlocked {
				e.feedBlocked, e.fire = false, true
			}
			return n, nil
		case e.cinEOF:
			return 0, io.EOF
		case e.hsDone:
			return 0, errWouldBlock
		}
		e.wait(&e.dataIn)
	}
}

// Write queues all of p, waiting for room while the loop drains the queue:
// crypto/tls treats a short write as fatal. Records made on the loop's
// goroutine (Engine.seal, Engine.open) never wait, since the loop is who
// would drain the queue; those seal makes do not notify either, since the
// loop sends them when Write returns.
func (w wire) Write(p []byte) (int, error) {
	e := w.e
	total := 0
	for len(p) > 0 {
		e.mu.Lock()
		for !e.closed && e.cout.free() == 0 && !e.inline {
			e.wait(&e.roomOut)
		}
		if e.closed {
			e.unlock()
			return total, net.ErrClosed
		}
		if e.cout.free() == 0 {
			e.unlock()
			return total, errCipherFull
		}
		n := e.cout.push(p)
		p, total = p[n:], total+n
		e.fire = e.fire || !e.sealing
		e.unlock()
	}
	return total, nil
}

// errCipherFull fails a session whose records, made on the loop, found the
// ciphertext queue full: the room sealable counted on was taken by records
// made meanwhile, or a peer floods KeyUpdates faster than it reads.
var errCipherFull = errors.New("TLS ciphertext queue overrun")

// Close is never called by the engine (it closes its queues itself), but
// crypto/tls may call it when a handshake context ends.
func (w wire) Close() error { return nil }

// The addresses only show in crypto/tls's messages, which the connectors
// prefix with the socket's own name.
func (w wire) LocalAddr() net.Addr  { return memAddr{} }
func (w wire) RemoteAddr() net.Addr { return memAddr{} }

// Deadlines are the engine's business (the handshake timer, and Close).
func (w wire) SetDeadline(time.Time) error      { return nil }
func (w wire) SetReadDeadline(time.Time) error  { return nil }
func (w wire) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "memory" }
