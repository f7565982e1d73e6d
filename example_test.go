package nproxy_test

import (
	"context"
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

// A Server of its own, as a program that embeds several relays has: its log,
// options and counts are its own, and Serve leaves signals to the program.
func ExampleServer() {
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer upstream.Close()
	go func() {
		for {
			c, err := upstream.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from upstream\n")
			c.Close()
		}
	}()

	srv := &nproxy.Server{}
	srv.SetVerbosity(1)
	srv.SetLogOutput(io.Discard) // a file, in a real program
	srv.Register(nproxy.New(&tcp.In{Host: "127.0.0.1", Port: 26791},
		&tcp.Out{Host: "127.0.0.1", Port: upstream.Addr().(*net.TCPAddr).Port}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	for !srv.Ready() { // every listener listens
		time.Sleep(time.Millisecond)
	}

	c, err := net.Dial("tcp", "127.0.0.1:26791")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(b))
	cancel()
	fmt.Println(<-done, srv.TotalOpened())
	// Output:
	// hello from upstream
	// <nil> 1
}
