package loop

// Relayed reports whether s was joined to a peer by Relay, even if the
// relay has ended since.
func (s *Socket) Relayed() bool {
	_, ok := s.handler.(relay)
	return ok
}
