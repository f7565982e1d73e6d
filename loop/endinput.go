package loop

// EndInput treats s as if it had read EOF: nothing more is read from it, and
// its peer is shut down for writing once its pending data is written; the
// pair then closes as soon as the peer's own EOF has been relayed. It is for
// a peer that can take nothing more, such as a child process that exited:
// the connection ends once the child's last output is delivered, even if
// the client would have kept its side open.
func (l *Loop) EndInput(s *Socket) {
	if s.closed || s.readDone {
		return
	}
	l.finishRead(s)
}

// Relayed reports whether s was joined to a peer by Relay, even if the
// relay has ended since.
func (s *Socket) Relayed() bool {
	_, ok := s.handler.(relay)
	return ok
}
