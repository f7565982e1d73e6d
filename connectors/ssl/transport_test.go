package ssl

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/ssl/tlsengine"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// A relay whose peer is full reads one chunk and stops: it watches the
// socket again once the peer drains, but a drained fd does not call. When
// the client's close_notify came with its last records, the engine, which
// decrypts on the loop, latches the end while handing out that chunk: the
// transport must announce it, or the relay never hears of the end and the
// client waits for its EOF forever (the soak's ssl in case lost one in
// four so).
func TestEndAfterLastChunkAnnounced(t *testing.T) {
	certs, _, _ := setup(t)
	l := runLoop(t)

	fd, raw := socketPair(t)
	client := tls.Client(raw, tlsClientConfig(t, certs))
	defer client.Close()
	r := &oneChunkReader{ended: make(chan error, 1)}
	s := serverHandshake(t, l, certs, fd, client)
	// Both records wait in the fd before the relay first reads it.
	if _, err := client.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	l.Post(func() {
		s.SetHandler(r)
		l.WatchReader(s)
	})
	select {
	case err := <-r.ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		l.Post(func() { r.ended <- fmt.Errorf("read %q, then the end of the stream was never reported", r.got) })
		t.Fatal(<-r.ended)
	}
	if got := string(r.got); got != "last words" {
		t.Fatalf("got %q", got)
	}
}

// oneChunkReader reads one chunk per Readable, as the relay does when its
// peer cannot take more, until the end of the stream.
type oneChunkReader struct {
	got   []byte
	done  bool
	ended chan error
}

func (r *oneChunkReader) Readable(s *loop.Socket) {
	if r.done {
		return
	}
	var buf [64 << 10]byte
	n, err := s.Read(buf[:])
	r.got = append(r.got, buf[:n]...)
	switch {
	case errors.Is(err, unix.EAGAIN):
	case err != nil || n == 0:
		r.done = true
		r.ended <- err
	}
}

func (r *oneChunkReader) Writable(s *loop.Socket) {
	if f, ok := s.Transport().(loop.Flusher); ok {
		f.Flush()
	}
}

// A client that says everything at once (its Finished, its data and its
// close_notify in one write) leaves nothing in the fd once the handshake
// read it: the engine decrypts the data and the end while the socket waits
// for its server, parked. When the relay starts, the data must reach the
// server and the end too, as a shutdown of its write side (the soak's
// early half-closing clients lost their EOF so).
func TestEndWithHandshakeRelayed(t *testing.T) {
	certs, _, _ := setup(t)
	l := runLoop(t)

	clientFd, clientEnd := socketPair(t)
	serverFd, serverEnd := socketPair(t)
	clientEnd.SetDeadline(time.Now().Add(5 * time.Second))
	held := &heldConn{Conn: clientEnd}
	client := tls.Client(held, tlsClientConfig(t, certs))
	defer client.Close()

	handshaken := startServerHandshake(t, l, certs, clientFd)
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("all at once")); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	s := handshaken()
	// The engine's goroutine decrypts what came with the Finished and
	// posts its news; once it is gone, what it posted runs before the
	// relay starts (Post runs functions in order).
	idle(t, s.Transport().(*conn).e)
	relay(l, s, serverFd)
	serverEnd.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(serverEnd)
	if err != nil || string(got) != "all at once" {
		t.Fatalf("the server read %q, then %v", got, err)
	}
}

// runLoop runs a loop until the test ends.
func runLoop(t *testing.T) *loop.Loop {
	l, err := loop.New(loop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { l.Run(); close(ran) }()
	t.Cleanup(func() { l.Stop(); <-ran })
	return l
}

// startServerHandshake starts the server side of a handshake on fd; the
// function it returns waits for its end and returns the socket, parked.
func startServerHandshake(t *testing.T, l *loop.Loop, certs *ssltest.Certs, fd int) func() *loop.Socket {
	done := make(chan error, 1)
	var s *loop.Socket
	l.Post(func() {
		s, _ = l.Adopt(fd, nil)
		Handshake(s, tlsServerConfig(t, certs), true, 0, func(err error) { done <- err })
	})
	return func() *loop.Socket {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// serverHandshake runs a handshake between client and the server side on
// fd, and returns the server's socket, parked.
func serverHandshake(t *testing.T, l *loop.Loop, certs *ssltest.Certs, fd int, client *tls.Conn) *loop.Socket {
	handshaken := startServerHandshake(t, l, certs, fd)
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	return handshaken()
}

// relay joins s and a socket of fd in a relay.
func relay(l *loop.Loop, s *loop.Socket, fd int) {
	l.Post(func() {
		server, _ := l.Adopt(fd, nil)
		l.Relay(s, server)
	})
}

// socketPair returns a connected pair of stream sockets: a non-blocking fd
// for the loop, and the other end as a net.Conn for the test.
func socketPair(t *testing.T) (int, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "test end")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return fds[0], c
}

// heldConn writes the first write (a ClientHello) at once, and keeps the
// rest until release writes it all at once.
type heldConn struct {
	net.Conn
	writes int
	kept   []byte
}

func (h *heldConn) Write(p []byte) (int, error) {
	if h.writes++; h.writes == 1 {
		return h.Conn.Write(p)
	}
	h.kept = append(h.kept, p...)
	return len(p), nil
}

func (h *heldConn) release() error {
	// crypto/tls's CloseWrite leaves the write deadline in the past.
	h.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := h.Conn.Write(h.kept)
	return err
}

// idle waits, 5 s at most, until no goroutine of e runs. (Nothing announces
// a goroutine's exit; its stack names its engine.)
func idle(t *testing.T, e *tlsengine.Engine) {
	t.Helper()
	me := fmt.Sprintf("(*Engine).reader(%p", e)
	for deadline := time.Now().Add(5 * time.Second); strings.Contains(engineStacks(), me); {
		if time.Now().After(deadline) {
			t.Fatal("the engine's reader still runs")
		}
		time.Sleep(time.Millisecond)
	}
}

func engineStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// A chunk the engine seals whole but the fd takes only in part leaves
// records in the engine: the relay, whose Send took the chunk, must still
// watch the fd for them, or the stream's tail waits for more data that may
// never come.
func TestSealedTailSent(t *testing.T) {
	certs, _, _ := setup(t)
	l := runLoop(t)

	clientFd, clientEnd := socketPair(t)
	serverFd, serverEnd := socketPair(t)
	// The client's socket takes a few KiB at a time, far less than a
	// sealed chunk.
	unix.SetsockoptInt(clientFd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	clientEnd.SetDeadline(time.Now().Add(5 * time.Second))
	client := tls.Client(clientEnd, tlsClientConfig(t, certs))
	defer client.Close()

	s := serverHandshake(t, l, certs, clientFd, client)
	relay(l, s, serverFd)
	data := make([]byte, 60<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := serverEnd.Write(data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if n, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the client read %d of %d bytes: %v", n, len(data), err)
	}
}
