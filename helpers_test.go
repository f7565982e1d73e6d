package nproxy_test

import (
	"bufio"
	"errors"
	"io"
	"math/rand"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// tcpProxy makes a proxy from a fresh port to 127.0.0.1:backend.
func tcpProxy(t testing.TB, backend int) (*nproxy.Proxy, int) {
	port := nproxytest.FreePort(t)
	return nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: backend}), port
}

// relayPair runs Mainloop(max) on a Server of its own, relaying a fresh
// port to a new backend, and returns a client connected through it, the
// backend's end of that connection, and the run.
func relayPair(t testing.TB, max int) (c, s *net.TCPConn, run *nproxytest.Run) {
	t.Helper()
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	run = nproxytest.StartServer(t, &nproxy.Server{}, max, p)
	return nproxytest.Dial(t, port), b.accept(t), run
}

// backend is a real TCP server on 127.0.0.1 whose connections are handed to
// the test one by one.
type backend struct {
	ln    net.Listener
	conns chan *net.TCPConn
	port  int
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, conns: make(chan *net.TCPConn, 64), port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns <- c.(*net.TCPConn)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *backend) accept(t testing.TB) *net.TCPConn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("backend: no connection came through the proxy")
		return nil
	}
}

// readLine reads one \n-terminated line within a deadline.
func readLine(t testing.TB, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, s)
	}
	return s
}

// stream writes size pseudo-random bytes from seed in random chunk sizes.
func stream(w io.Writer, seed int64, size int) error {
	rng := rand.New(rand.NewSource(seed))
	data := make([]byte, size)
	rng.Read(data)
	chunks := rand.New(rand.NewSource(seed + 1))
	for len(data) > 0 {
		n := min(1+chunks.Intn(100000), len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// checkStream reads r to EOF and compares it with stream(seed, size).
func checkStream(r io.Reader, seed int64, size int) error {
	want := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(want)
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(got) != size {
		return errors.New("got " + strconv.Itoa(len(got)) + " bytes, want " + strconv.Itoa(size))
	}
	for i := range got {
		if got[i] != want[i] {
			return errors.New("byte " + strconv.Itoa(i) + " differs")
		}
	}
	return nil
}

// exchange runs a full-duplex transfer on c: it sends stream(sendSeed),
// half-closes, and checks that stream(recvSeed) arrives whole.
func exchange(c *net.TCPConn, sendSeed, recvSeed int64, size int) error {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if werr = stream(c, sendSeed, size); werr == nil {
			werr = c.CloseWrite()
		}
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	rerr := checkStream(c, recvSeed, size)
	wg.Wait()
	return errors.Join(werr, rerr)
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }
