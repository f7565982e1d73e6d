package connect

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// fillingIn is a tcp in that fills each client's socket before handing it
// on: the test's client reads nothing until the end, so what the relay
// writes to it first waits in the relay's queue.
type fillingIn struct {
	t        *testing.T
	Port     int
	accepted chan *filled
}

type filled struct {
	l      *loop.Loop
	client *loop.Socket
	filler []byte
}

func (f *fillingIn) Listen(l *loop.Loop, h connectors.Handler) error {
	return connectors.Listen(l, "127.0.0.1", f.Port, func(c *loop.Socket) {
		f.accepted <- &filled{l: l, client: c, filler: nproxytest.FillSocket(f.t, c.Fd())}
		h.Accepted(l, c)
	})
}

// The bytes that came with the web proxy's 200 reply wait for the client
// while its socket is full; what the server sends next must not be spliced
// past them (loop's canSplice guard).
func TestBytesAfterReplyAreNotOvertaken(t *testing.T) {
	early := bytes.Repeat([]byte("after-200."), 300) // one read of the handshake
	later := bytes.Repeat([]byte("later..."), 2048)
	send := make(chan struct{})
	release := sync.OnceFunc(func() { close(send) })
	defer release() // a failed test must not leave the script waiting
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		c.Write(append([]byte("HTTP/1.1 200 Connection established\r\n\r\n"), early...))
		<-send
		c.Write(later)
		io.Copy(io.Discard, c)
	})
	in := &fillingIn{t: t, Port: nproxytest.FreePort(t), accepted: make(chan *filled, 1)}
	nproxytest.Start(t, 0, nproxy.New(in, &Out{Host: "127.0.0.1", Port: 9, ProxyHost: sp.Host, ProxyPort: sp.Port}))
	client, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	f := <-in.accepted
	nproxytest.AwaitOnLoop(t, f.l, "the bytes after the reply to wait for the client", func() bool {
		return f.client.Peer != nil && f.client.Pending() >= len(early)
	})
	release()
	nproxytest.AwaitOnLoop(t, f.l, "the relay to read what the server sent next", func() bool {
		return f.client.Pending() >= len(early)+len(later)
	})
	want := append(append(append([]byte{}, f.filler...), early...), later...)
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := nproxytest.FirstDiff(got, want)
		t.Fatalf("byte %d of %d differs: got %q, want %q (spliced bytes overtook the stashed ones)",
			i, len(want), got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
	}
}
