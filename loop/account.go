package loop

import "time"

// Traffic counts the bytes relayed for one socket, by direction and path.
// The relay adds to it with plain arithmetic on the loop goroutine, so the
// accounting costs no lock and no allocation; read it on the loop (for
// example from a Closer) once the socket is done.
type Traffic struct {
	InSpliced  uint64 // read from this socket and spliced to its peer
	InCopied   uint64 // read from this socket and copied to its peer
	OutSpliced uint64 // spliced from the peer towards this socket
	OutCopied  uint64 // copied from the peer towards this socket
}

// In returns the bytes read from the socket and relayed, by either path.
func (t Traffic) In() uint64 { return t.InSpliced + t.InCopied }

// Out returns the bytes relayed towards the socket, by either path.
func (t Traffic) Out() uint64 { return t.OutSpliced + t.OutCopied }

// End says how a socket's connection ended. The first cause recorded wins:
// a reset that closes a pair is not overwritten by the close that follows.
type End uint8

// How a connection may end.
const (
	EndNone      End = iota // still open, or closed by the program (Stop, a connector)
	EndEOF                  // both directions ended with EOF: a clean close
	EndReset                // this socket failed: reset, broken pipe, another error
	EndPeerReset            // the socket's peer failed, and this one was closed for it
	EndTimeout              // a deadline passed: connect, handshake
	EndRefused              // the server refused the connection
	EndError                // the server could not be reached for another reason
)

var endNames = [...]string{"closed", "eof", "reset", "peer reset", "timeout", "refused", "error"}

// String names the end as the access log writes it.
func (e End) String() string {
	if int(e) < len(endNames) {
		return endNames[e]
	}
	return "?"
}

// Traffic returns the bytes relayed for s so far.
func (s *Socket) Traffic() Traffic { return s.traffic }

// End returns how s's connection ended, EndNone while it runs.
func (s *Socket) End() End { return s.end }

// SetEnd records how s's connection ends, unless a cause is recorded already.
func (s *Socket) SetEnd(e End) {
	if s.end == EndNone {
		s.end = e
	}
}

// Born returns when the socket joined the loop (accepted or dialed).
func (s *Socket) Born() time.Time { return s.loop.epoch.Add(time.Duration(s.born)) }

// now is the loop's clock for Socket.born: 8 bytes a socket rather than a
// time.Time's 24, still monotonic.
func (l *Loop) now() int64 { return int64(time.Since(l.epoch)) }

// SetTarget records the name of the server a client is relayed to, so that
// it can still be logged when the server's socket is gone.
func (s *Socket) SetTarget(target string) { s.extra().target = target }

// Target returns what SetTarget recorded.
func (s *Socket) Target() string {
	if s.ext == nil {
		return ""
	}
	return s.ext.target
}

// LocalName returns the socket's own address, as Net::Proxy's nicknames
// show it ("peer -> local" for an accepted socket).
func (s *Socket) LocalName() string { return localName(s.fd) }

// logName is the socket's name in Net::Proxy's log lines, which call a
// listener "listener host:port".
func (s *Socket) logName() string {
	if _, ok := s.handler.(*listener); ok {
		return "listener " + s.Nick()
	}
	return s.Nick()
}

// countSpliced and countCopied account n bytes moved from src to dst.
func countSpliced(src, dst *Socket, n int) {
	src.traffic.InSpliced += uint64(n)
	dst.traffic.OutSpliced += uint64(n)
}

func countCopied(src, dst *Socket, n int) {
	src.traffic.InCopied += uint64(n)
	dst.traffic.OutCopied += uint64(n)
}
