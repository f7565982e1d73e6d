package loop

import (
	"testing"

	"golang.org/x/sys/unix"
)

// liveIdleRelays is how many idle relays BenchmarkRelaySmallAmongIdle parks
// on the loop: 5,000 loop sockets (10,000 fds with their far ends), half the
// bench's live scenario, within a test process's fd limit.
const liveIdleRelays = 2500

// BenchmarkRelaySmallAmongIdle is BenchmarkRelaySmall with liveIdleRelays
// idle relays on the same loop (issue 18 item 4, the live scenario's 9,990
// pairs). A pass's work must follow the ready sockets, not the open ones:
// anything per pass that walks every socket or timer would show here as
// ns/op growing with liveIdleRelays against BenchmarkRelaySmall.
func BenchmarkRelaySmallAmongIdle(b *testing.B) {
	l := newTestLoop(b, Config{})
	runLoop(b, l)
	for i := 0; i < liveIdleRelays; i++ {
		farA, in := socketPair(b)
		out, farB := socketPair(b)
		b.Cleanup(func() { unix.Close(farA); unix.Close(farB) })
		onLoop(l, func() {
			a, _ := l.Adopt(in, nil)
			c, _ := l.Adopt(out, nil)
			l.Relay(a, c)
		})
	}
	client, server := relayedPair(b, l, nil)
	defer unix.Close(client)
	defer unix.Close(server)
	chunk := make([]byte, smallChunk)
	got := make([]byte, len(chunk))
	b.ReportAllocs()
	b.ResetTimer()
	relayChunks(b, client, server, chunk, got, b.N)
}
