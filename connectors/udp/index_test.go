package udp

import (
	"net/netip"
	"testing"
)

// TestFlowIndex adds, finds and removes flows across the index's growth,
// IPv4 and IPv6 keys alike, and checks that a lookup allocates nothing (it
// runs for every datagram from a client). Not parallel: AllocsPerRun
// counts the whole process's allocations.
func TestFlowIndex(t *testing.T) {
	var x flowIndex
	if x.find(flowKey{}) != nil {
		t.Fatal("the empty index found a flow")
	}
	const n = 1000
	keys := make([]flowKey, 0, 2*n)
	for i := range n {
		keys = append(keys, keyOf(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(i))))
		keys = append(keys, keyOf(netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(i))))
	}
	flows := make([]*flow, len(keys))
	for i, k := range keys {
		flows[i] = &flow{key: k}
		x.add(flows[i])
	}
	for i, k := range keys {
		if got := x.find(k); got != flows[i] {
			t.Fatalf("key %d: found %p, want %p", i, got, flows[i])
		}
	}
	// Every other flow goes; the rest stay findable, the others are gone.
	for i := 0; i < len(flows); i += 2 {
		x.remove(flows[i])
		x.remove(flows[i]) // twice: a flow already gone is ignored
	}
	for i, k := range keys {
		want := flows[i]
		if i%2 == 0 {
			want = nil
		}
		if got := x.find(k); got != want {
			t.Fatalf("after removals, key %d: found %p, want %p", i, got, want)
		}
	}
	if x.n != n {
		t.Fatalf("%d flows indexed, want %d", x.n, n)
	}
	if a := testing.AllocsPerRun(100, func() { x.find(keys[1]) }); a != 0 {
		t.Fatalf("a lookup allocates %v times", a)
	}
}
