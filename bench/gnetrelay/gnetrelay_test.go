package gnetrelay

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"
)

// TestRelay sends random bytes through the relay to an echo server and
// expects them back, in order, on several connections at once.
func TestRelay(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	go Run(addr, up.Addr().String(), 1) // runs until the test binary exits

	conn := dialRetry(t, addr)
	conn.Close()
	done := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func(seed int64) {
			c := dialRetry(t, addr)
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := make([]byte, 1<<20)
			rand.New(rand.NewSource(seed)).Read(msg)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				done <- err
				return
			}
			if !bytes.Equal(got, msg) {
				done <- io.ErrUnexpectedEOF
				return
			}
			done <- nil
		}(int64(i))
	}
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func dialRetry(t *testing.T, addr string) net.Conn {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			return c
		}
	}
	t.Fatalf("relay at %s never listened", addr)
	return nil
}
