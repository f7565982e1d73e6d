package ssl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

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
	t.Parallel()
	certs, _, _ := setup(t)
	l, err := loop.New(loop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { l.Run(); close(ran) }()
	t.Cleanup(func() { l.Stop(); <-ran })

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "client")
	raw, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(raw, tlsClientConfig(t, certs))
	defer client.Close()

	r := &oneChunkReader{ended: make(chan error, 1)}
	handshaken := make(chan error, 1)
	var s *loop.Socket
	l.Post(func() {
		s, _ = l.Adopt(fds[0], nil)
		newConn(s, tlsServerConfig(t, certs), true, tlsengine.Options{}, handshaking, func(err error) { handshaken <- err })
	})
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshaken; err != nil {
		t.Fatal(err)
	}
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
