package loop_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/nproxy/nproxy/loop"
)

// A loop that relays each client of a listener to a server: the kernel
// splices the bytes, since both sockets are plain TCP.
func ExampleLoop_Relay() {
	server, _ := net.Listen("tcp", "127.0.0.1:0")
	defer server.Close()
	go func() {
		c, err := server.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello from the server\n")
		c.Close()
	}()
	serverPort := server.Addr().(*net.TCPAddr).Port

	l, err := loop.New(loop.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := l.Listen(netip.MustParseAddrPort("127.0.0.1:0"), func(client *loop.Socket) {
		l.Dial("127.0.0.1", serverPort, 0, func(s *loop.Socket, err error) {
			if err != nil {
				l.Close(client)
				return
			}
			l.Relay(client, s)
		})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	addr := ln.Nick() // the port the kernel chose
	listening := make(chan struct{})
	l.Post(func() { close(listening) }) // runs once Run has started the listeners
	done := make(chan error)
	go func() { done <- l.Run() }()
	<-listening

	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	got, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(got))
	l.Stop()
	fmt.Println(<-done)
	// Output:
	// hello from the server
	// <nil>
}
