package nproxy_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// A relay embedded in a Go program: connections to port 26789 go to the
// server on port 29876, spliced by the kernel. Mainloop(1) returns once one
// connection was fully processed.
func ExampleNew() {
	p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: 26789}, &tcp.Out{Host: "127.0.0.1", Port: 29876})
	p.Register()
	defer p.Unregister()

	go exampleServerAndClient()
	if err := nproxy.Mainloop(1); err != nil {
		fmt.Println(err)
	}
	// Output: hello through nproxy
}

// exampleServerAndClient plays both ends of the example's connection.
func exampleServerAndClient() {
	server, err := net.Listen("tcp", "127.0.0.1:29876")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()
	go func() {
		c, _ := server.Accept()
		io.WriteString(c, "hello through nproxy\n")
		c.Close()
	}()
	for i := 0; i < 100; i++ { // until Mainloop listens
		if c, err := net.Dial("tcp", "127.0.0.1:26789"); err == nil {
			b, _ := io.ReadAll(c)
			fmt.Print(string(b))
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
