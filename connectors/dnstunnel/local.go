package dnstunnel

import (
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// maxPending bounds the bytes each side holds for a session in each
// direction: read from the local stream and not yet acknowledged, or
// received and not yet written to it.
const maxPending = 64 << 10

// chunk is the most one read from a local stream takes.
const chunk = 16 << 10

// stream is the tunnel's end of a local stream, with the bytes pending each
// way.
type stream struct {
	sock    *loop.Socket
	out     []byte // received from the peer, not yet written
	in      []byte // read, not yet acknowledged by the peer
	inEOF   bool   // the local stream ended
	outFIN  bool   // the peer's stream ended: shut down once out drains
	shut    bool
	scratch []byte
}

// readIn reads the local stream while fewer than maxPending bytes wait for
// an ack; it reports whether anything changed.
func (st *stream) readIn() bool {
	changed := false
	for len(st.in) < maxPending && !st.inEOF {
		if st.scratch == nil {
			st.scratch = make([]byte, chunk)
		}
		n, err := unix.Read(st.sock.Fd(), st.scratch[:min(chunk, maxPending-len(st.in))])
		if err == unix.EAGAIN {
			return changed
		}
		changed = true
		if n <= 0 {
			st.inEOF = true
			break
		}
		st.in = append(st.in, st.scratch[:n]...)
	}
	st.sock.Loop().UnwatchReader(st.sock)
	return changed
}

// acked drops the first n bytes waiting for an ack, and reads on.
func (st *stream) acked(n int) {
	st.in = st.in[n:]
	if len(st.in) == 0 {
		st.in = nil // let the array go
	}
	if !st.inEOF && !st.sock.Closed() {
		st.sock.Loop().WatchReader(st.sock)
	}
}

// flushOut writes what was received to the local stream, and shuts it down
// for writing after the peer's FIN. It returns false when the stream is
// gone.
func (st *stream) flushOut() bool {
	l := st.sock.Loop()
	for len(st.out) > 0 {
		n, err := unix.Write(st.sock.Fd(), st.out)
		if err == unix.EAGAIN {
			l.WatchWriter(st.sock)
			return true
		}
		if err != nil {
			return false
		}
		st.out = st.out[n:]
	}
	st.out = nil
	l.UnwatchWriter(st.sock)
	if st.outFIN && !st.shut {
		st.shut = true
		unix.Shutdown(st.sock.Fd(), unix.SHUT_WR)
	}
	return true
}
