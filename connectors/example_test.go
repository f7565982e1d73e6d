package connectors_test

import (
	"fmt"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Build makes a connector from Net::Proxy-style parameters, as the command
// and its configuration file do, and names the offending key when one is
// wrong.
func ExampleBuild() {
	c, err := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "tcp", "host": "127.0.0.1", "port": "6789"})
	if err != nil {
		fmt.Println(err)
		return
	}
	in := c.(*tcp.In)
	fmt.Println(in.Host, in.Port)

	_, err = connectors.Build(connectors.SideOut, "out", map[string]any{"host": "localhost", "port": "22"})
	fmt.Println(err)
	// Output:
	// 127.0.0.1 6789
	// 'type' key required for 'out' connector
}
