package httptunnel

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// pair starts nproxy out -> nproxy in -> echo and returns the entry port.
func pair(t *testing.T, out *Out, in *In) int {
	in.Host, in.Port = "127.0.0.1", nproxytest.FreePort(t)
	out.Host, out.Port = "127.0.0.1", in.Port
	e := entry(t)
	start(t, nproxy.New(e, out), nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}))
	return e.Port
}

// Between two nproxies half-close is exact: the client writes everything,
// shuts its side, and only then reads the whole echo back.
func TestPairHalfClose(t *testing.T) {
	halfClose(t, pair(t, &Out{Options: Options{ContentLength: 10000}}, &In{Options: Options{ContentLength: 7000}}))
}

// A mux stream's FIN is a half-close too.
func TestMuxHalfClose(t *testing.T) {
	halfClose(t, muxPair(t, &Out{}))
}

// halfClose writes 2 MiB, shuts its side, then reads the echo to its end.
func halfClose(t *testing.T, port int) {
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, 2*mb)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back of %d, or different ones", len(got), len(want))
	}
}

// Small bodies force many reconnections each way, strict ones padding.
func TestPairSmallStrictBodies(t *testing.T) {
	port := pair(t, &Out{Options: Options{ContentLength: 300, Strict: true}}, &In{Options: Options{ContentLength: 200, Strict: true}})
	exchange(t, port, 200<<10)
}
