package nproxytest

import (
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/internal/testrun"
	"github.com/nproxy/nproxy/loop"
)

// RunLoop has the in connector of each of proxies listen on l, then runs
// l in the background until the test ends: then it stops l, and fails t if
// Run fails or does not return within 5 s. It serves tests whose proxies
// run on a loop of their own, so that they can run in parallel (Mainloop
// is one per process).
func RunLoop(t testing.TB, l *loop.Loop, proxies ...*nproxy.Proxy) {
	t.Helper()
	for _, p := range proxies {
		if err := p.In().Listen(l, p); err != nil {
			l.Discard()
			t.Fatal(err)
		}
	}
	testrun.InBackground(t, l)
}
