package nproxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/dual"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// Several MiB each way, random chunk sizes, many connections at once: every
// byte arrives, in order, and the plain TCP pairs were spliced.
func TestRelayByteExactConcurrent(t *testing.T) {
	// Not parallel: 100 MiB through the race detector would starve the
	// other tests' 5-second waits on a busy machine.
	srv := &nproxy.Server{}
	const conns, size = 16, 3 << 20
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	done := nproxytest.StartServer(t, srv, conns, p)
	spliced := srv.SplicedBytes()

	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for i := 0; i < conns; i++ {
		c := nproxytest.Dial(t, port)
		s := b.accept(t)
		wg.Add(2)
		go func(i int64) { defer wg.Done(); errs <- exchange(c, 2*i, 2*i+1, size) }(int64(i))
		go func(i int64) { defer wg.Done(); errs <- exchange(s, 2*i+1, 2*i, size) }(int64(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Both ends half-closed: the proxy closes each pair on its own.
	done.Wait(t, 10*time.Second)
	if got := srv.SplicedBytes() - spliced; got < 2*conns*(size-size/8) { // the reads before a stream shows are copied
		t.Errorf("spliced %d bytes, want at least %d: the splice path did not run", got, 2*conns*size)
	}
	if p.Opened() != conns || p.Closed() != conns {
		t.Errorf("opened %d closed %d, want %d each", p.Opened(), p.Closed(), conns)
	}
}

// The same transfer with splice off goes through the buffers, byte-exact.
func TestRelayBufferPath(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	srv.SetOptions(nproxy.Options{NoSplice: true})
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	nproxytest.StartServer(t, srv, 0, p)
	copied, spliced := srv.CopiedBytes(), srv.SplicedBytes()
	c, s := nproxytest.Dial(t, port), b.accept(t)
	errs := make(chan error, 1)
	go func() { errs <- exchange(s, 7, 8, 2<<20) }()
	if err := exchange(c, 8, 7, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if srv.SplicedBytes() != spliced || srv.CopiedBytes()-copied < 4<<20 {
		t.Fatalf("buffer path not taken: spliced %d copied %d", srv.SplicedBytes()-spliced, srv.CopiedBytes()-copied)
	}
}

// Half-close: the client shuts its write side, the server answers after EOF,
// and the client reads the whole answer; then the other way round.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	nproxytest.StartServer(t, srv, 0, p)

	c, s := nproxytest.Dial(t, port), b.accept(t)
	io.WriteString(c, "question")
	c.CloseWrite()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	q, err := io.ReadAll(s)
	if err != nil || string(q) != "question" {
		t.Fatalf("server read %q, %v", q, err)
	}
	go func() { stream(s, 42, 1<<20); s.CloseWrite() }()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := checkStream(c, 42, 1<<20); err != nil {
		t.Fatalf("answer after the client's EOF: %v", err)
	}

	c2, s2 := nproxytest.Dial(t, port), b.accept(t)
	io.WriteString(s2, "banner")
	s2.CloseWrite()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(c2); string(got) != "banner" {
		t.Fatalf("client read %q", got)
	}
	go func() { stream(c2, 43, 1<<20); c2.CloseWrite() }()
	s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := checkStream(s2, 43, 1<<20); err != nil {
		t.Fatalf("upload after the server's EOF: %v", err)
	}
}

// A server that stops reading: the client is held back by the proxy's
// buffer limit instead of filling the proxy's memory.
func TestSlowReaderBoundsMemory(t *testing.T) {
	srv := &nproxy.Server{}
	for _, noSplice := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosplice=%v", noSplice), func(t *testing.T) {
			srv.SetOptions(nproxy.Options{NoSplice: noSplice})
			b := newBackend(t)
			p, port := tcpProxy(t, b.port)
			nproxytest.StartServer(t, srv, 0, p)
			c, s := nproxytest.Dial(t, port), b.accept(t)
			s.SetReadBuffer(64 << 10)

			before := heapInUse()
			chunk := make([]byte, 64<<10)
			written := 0
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
				n, err := c.Write(chunk)
				written += n
				if err != nil {
					break // blocked: backpressure reached the client
				}
			}
			growth := heapInUse() - before
			if written >= 256<<20 {
				t.Fatalf("the client wrote %d MiB without being held back", written>>20)
			}
			if growth > 2<<20 {
				t.Fatalf("heap grew by %d KiB while the server did not read (%d KiB written)", growth>>10, written>>10)
			}
			// Once the server reads, everything arrives.
			c.CloseWrite()
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.Copy(io.Discard, s)
			if err != nil || int(got) != written {
				t.Fatalf("server read %d of %d bytes: %v", got, written, err)
			}
		})
	}
}

func heapInUse() int {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.HeapInuse)
}

// Net::Proxy's tcp_fail: nothing listens behind the proxy; the client sees
// EOF promptly and the connection counts as opened and closed.
func TestConnectFailureClosesClient(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	p, port := tcpProxy(t, nproxytest.FreePort(t))
	done := nproxytest.StartServer(t, srv, 1, p)
	c := nproxytest.Dial(t, port)
	start := time.Now()
	nproxytest.ExpectEOF(t, c, 5*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("client closed after %v", d)
	}
	done.Wait(t, 10*time.Second)
	if p.Opened() != 1 || p.Closed() != 1 {
		t.Fatalf("opened %d closed %d, want 1 and 1", p.Opened(), p.Closed())
	}
}

// Net::Proxy's tcp_tcp: mainloop(1) accepts one connection, relays four
// lines, passes the close on, and returns; a second client is refused.
func TestTCPTCPMainloopOne(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	done := nproxytest.StartServer(t, srv, 1, p)
	c, s := nproxytest.Dial(t, port), b.accept(t)
	cr, sr := bufio.NewReader(c), bufio.NewReader(s)
	lines := []string{"zlonk\n", "bam\n", "kapow\n", "zowie\n"}
	for i, l := range lines {
		if i%2 == 0 {
			io.WriteString(c, l)
			if got := readLine(t, s, sr); got != l {
				t.Fatalf("server got %q, want %q", got, l)
			}
		} else {
			io.WriteString(s, l)
			if got := readLine(t, c, cr); got != l {
				t.Fatalf("client got %q, want %q", got, l)
			}
		}
	}
	if !eventuallyRefused(port) {
		t.Error("a second client was accepted after max connections were opened")
	}
	c.Close()
	nproxytest.ExpectEOF(t, s, 5*time.Second)
	s.Close() // half-close: the pair ends when the server closes too
	done.Wait(t, 10*time.Second)
}

func eventuallyRefused(port int) bool {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Net::Proxy's tcp_tcp_multi: three proxies, one unregistered before the
// loop starts; overlapping pairs exchange lines in random directions.
func TestTCPTCPMulti(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	var proxies []*nproxy.Proxy
	var ports []int
	var backends []*backend
	for i := 0; i < 3; i++ {
		b := newBackend(t)
		p, port := tcpProxy(t, b.port)
		proxies, ports, backends = append(proxies, p), append(ports, port), append(backends, b)
	}
	srv.Register(proxies[1])
	srv.Unregister(proxies[1])
	done := nproxytest.StartServer(t, srv, 4, proxies[0], proxies[2])
	if nproxytest.Listening(ports[1]) {
		t.Fatal("the unregistered proxy listens")
	}
	type pair struct {
		c, s   *net.TCPConn
		cr, sr *bufio.Reader
	}
	var pairs []pair
	for i := 0; i < 4; i++ {
		k := []int{0, 2}[i%2]
		c := nproxytest.Dial(t, ports[k])
		s := backends[k].accept(t)
		pairs = append(pairs, pair{c, s, bufio.NewReader(c), bufio.NewReader(s)})
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := newRand(seed)
	for round := 0; round < 7; round++ {
		for i, pr := range pairs {
			line := fmt.Sprintf("pair %d line %d\n", i, round)
			if rng.Intn(2) == 0 {
				io.WriteString(pr.c, line)
				if got := readLine(t, pr.s, pr.sr); got != line {
					t.Fatalf("server got %q want %q", got, line)
				}
			} else {
				io.WriteString(pr.s, line)
				if got := readLine(t, pr.c, pr.cr); got != line {
					t.Fatalf("client got %q want %q", got, line)
				}
			}
		}
	}
	for _, pr := range pairs {
		pr.c.Close()
		nproxytest.ExpectEOF(t, pr.s, 5*time.Second)
		pr.s.Close()
	}
	done.Wait(t, 10*time.Second)
	if srv.TotalOpened() < 4 || proxies[0].Opened() != 2 || proxies[2].Opened() != 2 || proxies[1].Opened() != 0 {
		t.Fatalf("opened: %d %d %d", proxies[0].Opened(), proxies[1].Opened(), proxies[2].Opened())
	}
}

// Net::Proxy's hook_in and hook_out: only data read on the hooked side is
// rewritten, and hooked data goes through the buffers, not splice.
func TestHooks(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	re := regexp.MustCompile(`\bz\w+`)
	hook := func(data []byte, _ *loop.Socket) []byte { return re.ReplaceAll(data, []byte("zowie")) }
	const line = "zlonk zok zapeth crunch_eth crraack\n"
	const rewritten = "zowie zowie zowie crunch_eth crraack\n"
	for _, side := range []string{"in", "out"} {
		t.Run(side, func(t *testing.T) {
			b := newBackend(t)
			port := nproxytest.FreePort(t)
			in := &tcp.In{Host: "127.0.0.1", Port: port}
			out := &tcp.Out{Host: "127.0.0.1", Port: b.port}
			if side == "in" {
				in.Hook = hook
			} else {
				out.Hook = hook
			}
			nproxytest.StartServer(t, srv, 0, nproxy.New(in, out))
			c, s := nproxytest.Dial(t, port), b.accept(t)
			cr, sr := bufio.NewReader(c), bufio.NewReader(s)
			wantUp, wantDown := line, line
			if side == "in" {
				wantUp = rewritten
			} else {
				wantDown = rewritten
			}
			io.WriteString(c, line)
			if got := readLine(t, s, sr); got != wantUp {
				t.Errorf("client→server: got %q want %q", got, wantUp)
			}
			io.WriteString(s, line)
			if got := readLine(t, c, cr); got != wantDown {
				t.Errorf("server→client: got %q want %q", got, wantDown)
			}
		})
	}
}

// A hook that makes data grow a lot still delivers everything in order.
func TestHookGrowth(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	b := newBackend(t)
	port := nproxytest.FreePort(t)
	in := &tcp.In{Host: "127.0.0.1", Port: port, Hook: func(data []byte, _ *loop.Socket) []byte {
		out := make([]byte, 0, 3*len(data))
		for _, c := range data {
			out = append(out, c, c, c)
		}
		return out
	}}
	nproxytest.StartServer(t, srv, 0, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: b.port}))
	c, s := nproxytest.Dial(t, port), b.accept(t)
	go func() { stream(c, 5, 1<<20); c.CloseWrite() }()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	var src = make([]byte, 1<<20)
	newRand(5).Read(src)
	if len(got) != 3*len(src) {
		t.Fatalf("got %d bytes, want %d", len(got), 3*len(src))
	}
	for i := range src {
		if got[3*i] != src[i] || got[3*i+2] != src[i] {
			t.Fatalf("byte %d differs", i)
		}
	}
}

// A reset from the server reaches the client as a reset or EOF at once.
func TestResetPropagates(t *testing.T) {
	t.Parallel()
	c, s, _ := relayPair(t, 0)
	io.WriteString(c, "hello\n")
	sr := bufio.NewReader(s)
	readLine(t, s, sr)
	s.SetLinger(0)
	s.Close()
	nproxytest.ExpectEnd(t, c, 5*time.Second)
}

// Net::Proxy 0.13's second close race: a socket with unflushed data whose
// own remote end goes away is still closed, and so is its peer.
func TestUnflushedSocketClosesWhenItsRemoteGoes(t *testing.T) {
	t.Parallel()
	c, s, done := relayPair(t, 1)
	s.SetReadBuffer(16 << 10)
	// Fill everything between the client and the server that does not read.
	chunk := make([]byte, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write(chunk); err != nil {
			break
		}
	}
	s.SetLinger(0)
	s.Close() // with data unread: a reset
	nproxytest.ExpectEnd(t, c, 5*time.Second)
	done.Wait(t, 10*time.Second) // the pair was closed and counted
}

// Many connections leave no file descriptor and no goroutine behind.
func TestNoLeaks(t *testing.T) {
	srv := &nproxy.Server{}
	fdsBefore, gBefore := nproxytest.OpenFDs(t), runtime.NumGoroutine()
	func() {
		b := newBackend(t)
		p, port := tcpProxy(t, b.port)
		const n = 300
		done := nproxytest.StartServer(t, srv, n, p)
		for i := 0; i < n; i++ {
			c := nproxytest.Dial(t, port)
			s := b.accept(t)
			io.WriteString(c, "ping")
			buf := make([]byte, 4)
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(s, buf); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				c.Close()
				s.Close()
			} else {
				s.Close()
				c.Close()
			}
		}
		done.Wait(t, 10*time.Second)
		b.ln.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds, gs := nproxytest.OpenFDs(t), runtime.NumGoroutine()
		if fds <= fdsBefore && gs <= gBefore+2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fds %d → %d, goroutines %d → %d", fdsBefore, fds, gBefore, gs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Several loops share the port through SO_REUSEPORT and relay every
// connection.
func TestLoops(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	srv.SetOptions(nproxy.Options{Loops: 3})
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	const n = 30
	done := nproxytest.StartServer(t, srv, n, p)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c := nproxytest.Dial(t, port)
		s := b.accept(t)
		wg.Add(2)
		for _, end := range []struct {
			conn       *net.TCPConn
			send, want int64
		}{{c, int64(i), int64(i) + 1000}, {s, int64(i) + 1000, int64(i)}} {
			go func() {
				defer wg.Done()
				if err := exchange(end.conn, end.send, end.want, 64<<10); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	done.Wait(t, 10*time.Second)
}

// IPv6 on both sides.
func TestIPv6(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		nproxytest.Unavailable(t, "no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	port := nproxytest.FreePort(t)
	p := nproxy.New(&tcp.In{Host: "::1", Port: port}, &tcp.Out{Host: "::1", Port: ln.Addr().(*net.TCPAddr).Port})
	srv.Register(p)
	defer srv.Unregister(p)
	done := make(chan error, 1)
	go func() { done <- srv.Mainloop(1) }()
	var c net.Conn
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c == nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "v6\n")
	if got := readLine(t, s, bufio.NewReader(s)); got != "v6\n" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Mainloop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Mainloop did not return")
	}
}

// Net::Proxy's listen_fail: a taken port fails the start with a message
// naming the host and port, and leaves nothing listening.
func TestListenFail(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	free := nproxytest.FreePort(t)
	ok := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: free}, &tcp.Out{Host: "127.0.0.1", Port: 1})
	taken := nproxy.New(&tcp.In{Host: "localhost", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: 1})
	srv.Register(ok)
	srv.Register(taken)
	defer srv.Unregister(ok)
	defer srv.Unregister(taken)
	err = srv.Mainloop(0)
	want := fmt.Sprintf("proxy #2: 'in' connector: can't listen on localhost port %d: address already in use", port)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if nproxytest.Listening(free) {
		t.Fatal("the first proxy's listener was left open")
	}
}

// An in connector that picks the server itself (dual) refuses an out
// connector other than dummy, instead of connecting twice.
func TestRouterNeedsDummyOut(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	in := &dual.In{Host: "127.0.0.1", Port: nproxytest.FreePort(t),
		ServerFirst: &tcp.Out{Host: "127.0.0.1", Port: 1}, ClientFirst: &tcp.Out{Host: "127.0.0.1", Port: 1}}
	p := nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: 1})
	srv.Register(p)
	defer srv.Unregister(p)
	err := srv.Mainloop(0)
	var ce *nproxy.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "must be dummy") {
		t.Fatalf("got %v, want a configuration error about dummy", err)
	}
}
