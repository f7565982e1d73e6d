package httptunnel

import (
	"testing"

	"github.com/nproxy/nproxy"
)

// nproxy as htc, GNU hts, an echo server: 10 MiB each way, byte-exact.
func TestOutToGNUHTS(t *testing.T) {
	hts := gnuHTS(t, echo(t))
	in := entry(t)
	start(t, nproxy.New(in, &Out{Host: "127.0.0.1", Port: hts}))
	exchange(t, in.Port, 10*mb)
}
