package httptunnel

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// downloadOrEcho serves, per connection, an endless download when the
// client's first byte is 'D', and an echo of everything otherwise.
func downloadOrEcho(t *testing.T) int {
	return nproxytest.ServeTCP(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		first := make([]byte, 1)
		if _, err := io.ReadFull(c, first); err != nil {
			return
		}
		if first[0] == 'D' {
			zeros := make([]byte, 64<<10)
			for {
				if _, err := c.Write(zeros); err != nil {
					return
				}
			}
		}
		c.Write(first)
		io.Copy(c, c)
	})
}

// Tunnels between two nproxies carry one connection each, whatever the
// order in which their requests arrive: a connection that leaves with a
// download still in flight, then a new one from the same address, and
// then eight at once, each get exactly their own bytes. (The GNU protocol
// names no tunnel in its requests; pairing them by client address alone
// once gave a new connection the data of the one before.)
func TestPairTunnelsDoNotCross(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t)}
	out := &Out{Host: "127.0.0.1", Port: in.Port}
	e := entry(t)
	start(t, nproxy.New(e, out), nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: downloadOrEcho(t)}))
	addr := "127.0.0.1:" + strconv.Itoa(e.Port)
	for round := 0; round < 5; round++ {
		leaveEarly(t, addr)
		echoExact(t, addr, 64)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() { echoExact(t, addr, 256<<10) })
	}
	wg.Wait()
}

// leaveEarly starts a download and closes after its first bytes.
func leaveEarly(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{'D'})
	if _, err := c.Read(make([]byte, 1024)); err != nil {
		t.Fatalf("download: %v", err)
	}
}

// echoExact sends size random bytes and expects exactly them back.
func echoExact(t *testing.T, addr string, size int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, size)
	rand.Read(want)
	want[0] = 'E' // not a download
	go c.Write(want)
	got := make([]byte, size)
	if n, err := io.ReadFull(c, got); err != nil {
		t.Errorf("echo: read %d of %d bytes: %v", n, size, err)
	} else if !bytes.Equal(got, want) {
		t.Errorf("echo of %d bytes: byte %d differs (%q...)", size, nproxytest.FirstDiff(got, want), got[:min(16, size)])
	}
}

// GNU htc's requests name no tunnel, and it runs one at a time: a new
// tunnel from its address ends the one its last client left with a
// download in flight, whose data the new tunnel must never receive.
func TestGNUClientTunnelsDoNotCross(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t)}
	start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: downloadOrEcho(t)}))
	nproxytest.WaitListening(t, in.Port)
	addr := "127.0.0.1:" + strconv.Itoa(gnuHTC(t, in.Port))
	for round := 0; round < 3; round++ {
		leaveEarly(t, addr)
		echoExact(t, addr, 64)
	}
}
