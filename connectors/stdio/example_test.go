package stdio_test

import (
	"os"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/stdio"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// An ssh ProxyCommand in Go: standard input and output relayed to the
// server, and the exit status says whether it was reached.
func ExampleIn() {
	in := &stdio.In{}
	nproxy.New(in, &tcp.Out{Host: "bastion.example", Port: 22}).Register()
	if nproxy.Mainloop(1) != nil || in.Err() != nil {
		os.Exit(1)
	}
}
