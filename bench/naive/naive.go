// Package naive is the relay a Go programmer writes in an afternoon: one
// goroutine per direction, io.Copy, and a half-close when one side is done.
// It is the baseline nproxy must beat; Go splices TCP to TCP inside io.Copy.
//
//	ln, _ := net.Listen("tcp", "127.0.0.1:7000")
//	naive.Serve(ln, "127.0.0.1:7001")
package naive

import (
	"errors"
	"io"
	"net"
	"time"
)

// Serve accepts on ln and relays every connection to target until ln fails.
func Serve(ln net.Listener, target string) error {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		if err != nil {
			// EMFILE and friends: back off instead of spinning, as net/http does.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go relay(c.(*net.TCPConn), target)
	}
}

func relay(client *net.TCPConn, target string) {
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	server := up.(*net.TCPConn)
	done := make(chan struct{})
	go func() {
		pipe(server, client)
		close(done)
	}()
	pipe(client, server)
	<-done
	client.Close()
	server.Close()
}

// pipe copies src to dst, then passes the EOF on as a half-close so that a
// request-then-answer protocol still gets its answer.
func pipe(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		// A reset or a write error: nothing more will flow either way.
		dst.Close()
		src.Close()
		return
	}
	dst.CloseWrite()
}
