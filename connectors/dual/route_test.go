package dual

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/nproxytest"
)

// routed is a dual connector with one backend per route, every backend
// greeting with its name, so that a client knows where it landed.
type routed struct {
	*running
	backends map[string]*backend
}

// startRouted starts a dual connector whose probes are, in order: TLS with
// SNI *.example.com (tls-sni), any TLS (tls), SSH (ssh), HTTP for Host
// zowie.* (http-zowie), any HTTP (http), and a regex for two NUL bytes
// (regex); silent clients go to A, all others to B.
func startRouted(t *testing.T, timeout time.Duration, serve func(*backend, net.Conn)) *routed {
	t.Helper()
	r := &routed{backends: map[string]*backend{}}
	for _, name := range []string{"A", "B", "tls-sni", "tls", "ssh", "http-zowie", "http", "regex"} {
		r.backends[name] = newBackend(t, name, serve)
	}
	route := func(p Probe, name string) Route { return Route{Probe: p, Out: r.backends[name].out()} }
	in := &In{
		Timeout:     timeout,
		ServerFirst: r.backends["A"].out(),
		ClientFirst: r.backends["B"].out(),
		Routes: []Route{
			route(TLS{SNI: []string{"*.example.com"}}, "tls-sni"),
			route(TLS{}, "tls"),
			route(SSH{}, "ssh"),
			route(HTTP{Host: []string{"zowie.*"}}, "http-zowie"),
			route(HTTP{}, "http"),
			route(Regex{RE: regexp.MustCompile(`^\x00\x00`), Min: 2}, "regex"),
		},
	}
	r.running = startDual(t, in, 0)
	return r
}

// openings are first flights of real protocols and where each must land.
func openings(t *testing.T) map[string]string {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(helloFile(name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return map[string]string{
		read("go-sni-alpn"):                "tls-sni",
		read("openssl"):                    "tls",
		read("openssl-sni-alpn-tls12"):     "tls-sni",
		sshBanner:                          "ssh",
		httpGet:                            "http-zowie",
		"GET / HTTP/1.0\r\n\r\n":           "http",
		"\x00\x00\x01 binary":              "regex",
		"hello there, nobody knows me\r\n": "B",
	}
}

// TestProbeRoutes sends each opening whole and one byte per write, and
// checks that the right backend gets exactly those bytes first and that its
// answer comes back.
func TestProbeRoutes(t *testing.T) {
	// Byte by byte, a ClientHello takes over a thousand writes: on a loaded
	// machine under -race, more than the 3 s this once allowed.
	r := startRouted(t, 10*time.Second, nil)
	for in, want := range openings(t) {
		for _, byteByByte := range []bool{false, true} {
			c := r.dial(t)
			send(t, c, []byte(in), byteByByte)
			bc := r.backends[want].next(t)
			got := make([]byte, len(in))
			if _, err := io.ReadFull(bc, got); err != nil || !bytes.Equal(got, []byte(in)) {
				t.Fatalf("%s (byte by byte %v): backend read %q, %v", want, byteByByte, got, err)
			}
			bc.Write([]byte("ok\n"))
			if line := readLine(t, bufio.NewReader(c)); line != "ok" {
				t.Fatalf("%s: client read %q", want, line)
			}
			c.Close()
		}
	}
	for name, b := range r.backends {
		if name != "A" {
			b.none(t)
		}
	}
}

// send writes b whole, or one byte per write with a pause, so that the
// proxy reads it in many pieces.
func send(t *testing.T, c net.Conn, b []byte, byteByByte bool) {
	t.Helper()
	if !byteByByte {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		return
	}
	for i := range b {
		if _, err := c.Write(b[i : i+1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// TestOneByteStaller: a client that sends one byte and stalls waits at most
// the timeout when probes are undecided, then reaches client_first with that
// byte first; without probes one byte decides at once.
func TestOneByteStaller(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, withProbes := range []bool{true, false} {
		a, b := newBackend(t, "A", nil), newBackend(t, "B", nil)
		in := &In{Timeout: timeout, ServerFirst: a.out(), ClientFirst: b.out()}
		if withProbes {
			in.Routes = []Route{{Probe: HTTP{}, Out: a.out()}}
		}
		r := startDual(t, in, 1)
		start := time.Now()
		c := r.dial(t)
		c.Write([]byte("G"))
		bc := b.next(t)
		waited := time.Since(start)
		if withProbes && (waited < timeout-50*time.Millisecond || waited > 3*timeout) {
			t.Errorf("with probes, the staller reached B after %v, want about %v", waited, timeout)
		}
		if !withProbes && waited > timeout/2 {
			t.Errorf("without probes, one byte took %v to decide", waited)
		}
		c.Write([]byte("ET / HTTP/1.1\r\n"))
		got := make([]byte, 16)
		if _, err := io.ReadFull(bc, got); err != nil || string(got) != "GET / HTTP/1.1\r\n" {
			t.Fatalf("B read %q, %v", got, err)
		}
		a.none(t)
		c.Close()
		nproxytest.ExpectEOF(t, bc, 5*time.Second)
		bc.Close()
		r.Wait(t, 5*time.Second)
	}
}

// TestEndBeforeDecision: a client that sends part of an opening and then
// half-closes reaches client_first with those bytes and an EOF, and still
// gets the answer.
func TestEndBeforeDecision(t *testing.T) {
	r := startRouted(t, 5*time.Second, nil)
	c := r.dial(t)
	start := time.Now()
	c.Write([]byte("GE"))
	c.CloseWrite()
	bc := r.backends["B"].next(t)
	if got, err := io.ReadAll(bc); err != nil || string(got) != "GE" {
		t.Fatalf("B read %q, %v", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("EOF took %v to decide", d)
	}
	bc.Write([]byte("bye\n"))
	bc.Close()
	if got, err := io.ReadAll(c); err != nil || string(got) != "bye\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

// TestProbeByteLimit: an opening that keeps the probes undecided past
// MaxProbeBytes goes to client_first at once, every byte intact.
func TestProbeByteLimit(t *testing.T) {
	b := newBackend(t, "B", nil)
	h := newBackend(t, "http", nil)
	r := startDual(t, &In{
		Timeout: 5 * time.Second, ServerFirst: h.out(), ClientFirst: b.out(),
		Routes: []Route{{Probe: HTTP{}, Out: h.out()}}, MaxProbeBytes: 64,
	}, 1)
	long := "GET /" + string(bytes.Repeat([]byte("a"), 300)) + " HTTP/1.1\r\n\r\n"
	start := time.Now()
	c := r.dial(t)
	c.Write([]byte(long))
	bc := b.next(t)
	got := make([]byte, len(long))
	if _, err := io.ReadFull(bc, got); err != nil || string(got) != long {
		t.Fatalf("B read %d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the byte limit took %v to decide", d)
	}
	h.none(t)
}

// TestConnectThenClose: clients that connect and leave (with a FIN or a
// reset) before saying anything open no server and are counted closed.
func TestConnectThenClose(t *testing.T) {
	const n = 100
	r := startRouted(t, 2*time.Second, nil)
	for i := range n {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			c.(*net.TCPConn).SetLinger(0) // a reset rather than a FIN
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.proxy.Closed() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.proxy.Opened() != n || r.proxy.Closed() != n {
		t.Fatalf("opened %d closed %d, want %d", r.proxy.Opened(), r.proxy.Closed(), n)
	}
	for _, b := range r.backends {
		b.none(t)
	}
	if open := openFDs(t); open > 64 {
		t.Errorf("%d file descriptors open after the clients left", open)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestMixedLoad is a load test in sslh's style: many clients at once, half
// of them silent (they wait for A's greeting), the others opening with SSH,
// TLS, HTTP or unknown bytes; each then streams random data and must get
// exactly its own data back from the backend its opening calls for. It
// runs on one loop, then on two (SO_REUSEPORT listeners).
func TestMixedLoad(t *testing.T) {
	for _, loops := range []int{1, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			nproxy.SetOptions(nproxy.Options{Loops: loops})
			defer nproxy.SetOptions(nproxy.Options{})
			mixedLoad(t, 400)
		})
	}
}

func mixedLoad(t *testing.T, clients int) {
	// The timeout leaves client-first clients time to write under -race on
	// a loaded machine (at 1 s, 400 clients on 2 busy cores were routed by
	// the timeout before their first bytes came); silent ones wait it out
	// all at once.
	r := startRouted(t, 5*time.Second, bannerEcho)
	var kinds []string
	var want []string
	for in, backend := range openings(t) {
		kinds, want = append(kinds, in), append(want, backend)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opening, backend := "", "A"
			if i%2 == 1 {
				k := (i / 2) % len(kinds)
				opening, backend = kinds[k], want[k]
			}
			if err := loadClient(r.port, int64(i), opening, backend); err != nil {
				errs <- fmt.Errorf("client %d (%s): %w", i, backend, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// loadClient sends opening and a random payload (a silent client first
// waits for the greeting), and checks the greeting of the backend it must
// reach and the exact echo.
func loadClient(port int, seed int64, opening, backend string) error {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	greeting := []byte(backend + " ready\n")
	if opening == "" {
		got := make([]byte, len(greeting))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, greeting) {
			return fmt.Errorf("greeted with %q, %v", got, err)
		}
		greeting = nil
	}
	payload := make([]byte, rand.New(rand.NewSource(seed)).Intn(64<<10))
	rand.New(rand.NewSource(seed)).Read(payload)
	sent := append([]byte(opening), payload...)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.HasPrefix(got, greeting) {
		return fmt.Errorf("greeted with %.30q", got)
	}
	if !bytes.Equal(got[len(greeting):], sent) {
		return fmt.Errorf("echo of %d bytes differs (got %d)", len(sent), len(got)-len(greeting))
	}
	return nil
}
