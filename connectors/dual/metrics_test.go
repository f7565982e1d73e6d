package dual

import (
	"testing"
	"time"
)

// Each decision is counted for its route, for nproxy_route_decisions_total.
func TestRouteCounters(t *testing.T) {
	a := newBackend(t, "A", echo)
	b := newBackend(t, "B", echo)
	in := &In{Timeout: 200 * time.Millisecond, ServerFirst: a.out(), ClientFirst: b.out(),
		Routes: []Route{{Probe: SSH{}, Out: a.out()}}}
	r := startDual(t, in, 3)
	r.dial(t).Write([]byte("SSH-2.0-test\r\n"))
	r.dial(t).Write([]byte("hello\n"))
	r.dial(t) // silent
	a.next(t)
	a.next(t)
	b.next(t)
	want := map[string]uint64{"probe ssh": 1, "client_first": 1, "server_first": 1}
	for _, rc := range r.proxy.Stats().Routes {
		if rc.Count != want[rc.Route] {
			t.Errorf("route %s: %d decisions, want %d", rc.Route, rc.Count, want[rc.Route])
		}
		delete(want, rc.Route)
	}
	if len(want) > 0 {
		t.Errorf("routes not counted: %v", want)
	}
}
