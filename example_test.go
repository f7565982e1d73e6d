package nproxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// A relay embedded in a Go program: connections to the in port go to the
// server, spliced by the kernel. Mainloop(1) returns once one connection
// was fully processed. (The ports are picked free for the example; a
// program would use fixed ones.)
func ExampleNew() {
	server, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()
	inPort, err := nproxytest.PickPort("127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: inPort},
		&tcp.Out{Host: "127.0.0.1", Port: server.Addr().(*net.TCPAddr).Port})
	p.Register()
	defer p.Unregister()

	go exampleServerAndClient(server, inPort)
	if err := nproxy.Mainloop(1); err != nil {
		fmt.Println(err)
	}
	// Output: hello through nproxy
}

// exampleServerAndClient plays both ends of the example's connection.
func exampleServerAndClient(server net.Listener, inPort int) {
	go func() {
		c, err := server.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello through nproxy\n")
		c.Close()
	}()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !nproxytest.Listening(inPort) { // until Mainloop listens
			continue
		}
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(inPort))); err == nil {
			b, _ := io.ReadAll(c)
			fmt.Print(string(b))
			c.Close()
			return
		}
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
