package naive

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestHalfClose: the upstream answers only after the request's EOF, and the
// client, having shut its write side, still reads the whole answer.
func TestHalfClose(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the relayed EOF
		c.Write(bytes.ToUpper(req))
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go Serve(ln, up.Addr().String())
	defer ln.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := bytes.Repeat([]byte("abc"), 100000)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.ToUpper(req)) {
		t.Fatalf("got %d bytes, want %d upper-cased", len(got), len(req))
	}
}
