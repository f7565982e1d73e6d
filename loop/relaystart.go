package loop

// RelayStarter is implemented by transports that may hold input when Relay
// joins their socket which the fd will not announce: TLS records that came
// with the handshake, decrypted while the socket waited for its peer, may
// end with the client's close_notify, and the client, having said
// everything, leaves the fd silent. Relay calls RelayStarted once the pair
// is joined; the transport then makes the socket readable (Notify) if it
// holds such input.
type RelayStarter interface {
	RelayStarted()
}

// startTransports tells the sockets' transports that the relay started.
func startTransports(sockets [2]*Socket) {
	for _, s := range sockets {
		if t, ok := s.transport.(RelayStarter); ok && !s.closed {
			t.RelayStarted()
		}
	}
}
