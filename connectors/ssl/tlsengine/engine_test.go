package tlsengine

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

// pair is a client engine and a server engine wired back to back by the
// test, which plays the loop: nothing moves unless the test moves it.
type pair struct {
	t      *testing.T
	cli    *Engine
	srv    *Engine
	wake   chan struct{}
	shutCS bool // the client's close_notify reached the server
	shutSC bool
}

func newPair(t *testing.T, version uint16, opt Options) *pair {
	t.Helper()
	certs := ssltest.New(t)
	scfg, ccfg := configs(t, certs)
	scfg.MaxVersion, ccfg.MaxVersion = version, version
	p := &pair{t: t, wake: make(chan struct{}, 1)}
	notify := func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.cli = NewClient(ccfg, opt, notify)
	p.srv = NewServer(scfg, opt, notify)
	t.Cleanup(func() { p.cli.Close(); p.srv.Close() })
	return p
}

// configs returns a server configuration with the test certificate and a
// client one that verifies it.
func configs(t *testing.T, certs *ssltest.Certs) (server, client *tls.Config) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

// move carries ciphertext both ways, and each side's end of stream once its
// close_notify is through; it reports whether anything moved.
func (p *pair) move() bool {
	a := carry(p.cli, p.srv)
	b := carry(p.srv, p.cli)
	moved := a || b
	if !p.shutCS && p.cli.Events()&WriteShut != 0 {
		p.shutCS, moved = true, true
		p.srv.FeedEOF()
	}
	if !p.shutSC && p.srv.Events()&WriteShut != 0 {
		p.shutSC, moved = true, true
		p.cli.FeedEOF()
	}
	return moved
}

func carry(from, to *Engine) bool {
	c := from.Cipher()
	n := to.Feed(c)
	from.Sent(n)
	return n > 0
}

// until moves bytes until cond holds, failing the test after 5 s. Like the
// loop's wake, it re-arms notify before it looks: news that comes after the
// look is announced, news that came before is seen. (No polling here: a lost
// notify must fail.)
func (p *pair) until(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		p.cli.Events()
		p.srv.Events()
		if cond() {
			return
		}
		if p.move() {
			continue
		}
		select {
		case <-p.wake:
		case <-deadline:
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// settle moves bytes until nothing has moved for a while.
func (p *pair) settle() {
	idle := 0
	for idle < 5 {
		if p.move() {
			idle = 0
			continue
		}
		idle++
		time.Sleep(5 * time.Millisecond)
	}
}

func readAll(e *Engine, into *bytes.Buffer) (eof bool, err error) {
	buf := make([]byte, 5000)
	for {
		n, err := e.Read(buf)
		into.Write(buf[:n])
		if err == io.EOF {
			return true, nil
		}
		if n == 0 || err != nil {
			return false, err
		}
	}
}

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// The client closes its side first; the server still answers, then closes.
func TestHalfClose(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			p := newPair(t, v.v, Options{})
			p.cli.Write([]byte("request"))
			p.cli.CloseWrite()
			var req, resp bytes.Buffer
			p.until("the request and its end", func() bool {
				eof, err := readAll(p.srv, &req)
				if err != nil {
					t.Fatal(err)
				}
				return eof
			})
			if req.String() != "request" {
				t.Fatalf("request %q", req.String())
			}
			if _, err := p.cli.Write([]byte("more")); err != ErrWriteClosed {
				t.Errorf("write after CloseWrite: %v", err)
			}
			p.srv.Write([]byte("response"))
			p.srv.CloseWrite()
			p.until("the response and its end", func() bool {
				eof, err := readAll(p.cli, &resp)
				if err != nil {
					t.Fatal(err)
				}
				return eof
			})
			if resp.String() != "response" {
				t.Fatalf("response %q", resp.String())
			}
			if p.cli.Err() != nil || p.srv.Err() != nil {
				t.Fatal(p.cli.Err(), p.srv.Err())
			}
		})
	}
}

// A server whose plaintext is not consumed holds no more than its queues:
// the client is stopped by backpressure, and no byte is lost when reading
// resumes.
func TestBackpressureSlowConsumer(t *testing.T) {
	const size = 4096
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{QueueSize: size})
	data := make([]byte, 1<<20)
	rand.Read(data)
	sent := 0
	write := func() {
		n, err := p.cli.Write(data[sent:])
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	for range 10 {
		write()
		p.settle()
	}
	t.Logf("the client took %d bytes", sent)
	if sent == len(data) {
		t.Fatal("the client took everything: no backpressure")
	}
	// What the client took sits in the two engines' queues and in
	// crypto/tls's record buffers, a few records at most.
	if sent > 4*size+2*16384 {
		t.Errorf("the client took %d bytes while nothing was read", sent)
	}
	for _, q := range []*ring{&p.srv.cin, &p.srv.pin, &p.cli.cout, &p.cli.pout} {
		if q.len() > size {
			t.Errorf("a queue holds %d bytes, more than its %d", q.len(), size)
		}
	}
	if p.srv.Events()&CanFeed != 0 || p.cli.Events()&CanWrite != 0 {
		t.Errorf("queues not full: server %b client %b", p.srv.Events(), p.cli.Events())
	}
	var got bytes.Buffer
	p.until("every byte", func() bool {
		write()
		readAll(p.srv, &got)
		return got.Len() == len(data)
	})
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("bytes lost or reordered")
	}
}

// A client whose socket takes nothing stops accepting plaintext.
func TestBackpressureSlowSocket(t *testing.T) {
	const size = 4096
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{QueueSize: size})
	p.until("the handshake", func() bool { return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 })
	data := make([]byte, 1<<20)
	sent := 0
	for range 50 {
		n, _ := p.cli.Write(data[sent:])
		sent += n
		time.Sleep(2 * time.Millisecond)
	}
	if sent > 2*size+16384 {
		t.Errorf("took %d bytes with the socket stalled", sent)
	}
	if len(p.cli.Cipher()) == 0 || p.cli.cout.len() > size {
		t.Errorf("ciphertext queued: %d", p.cli.cout.len())
	}
}

// Close returns at once and ends the goroutines whatever they wait for: a
// handshake waiting for bytes, a writer waiting for the socket, a reader
// waiting for the relay.
func TestCloseEndsGoroutines(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	scfg, _ := configs(t, certs)
	NewServer(scfg, Options{}, func() {}).Close()
	waiting := NewServer(scfg, Options{}, func() {})
	waiting.Feed([]byte{0x16, 0x03, 0x01, 0x01, 0x00})
	time.Sleep(10 * time.Millisecond)
	waiting.Close()

	p := newPair(t, tls.VersionTLS13, Options{QueueSize: 1024})
	p.until("the handshake", func() bool { return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 })
	p.cli.Write(make([]byte, 1024)) // more ciphertext than cout holds: the writer waits
	p.srv.Write(make([]byte, 1024))
	for range 20 {
		carry(p.srv, p.cli) // the client's reader fills pin and waits
		time.Sleep(time.Millisecond)
	}
	// Close must not wait for the blocked reader and writer, which would
	// wait forever: a bound the race detector on a busy machine can keep
	// still tells the two apart.
	start := time.Now()
	p.cli.Close()
	p.srv.Close()
	if time.Since(start) > 2*time.Second {
		t.Errorf("Close took %v", time.Since(start))
	}
	if _, err := p.cli.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// notify is called once until the loop asks for Events.
func TestNotifyCoalesced(t *testing.T) {
	ssltest.CheckGoroutines(t)
	var calls atomic.Int32
	certs := ssltest.New(t)
	_, ccfg := configs(t, certs)
	e := NewClient(ccfg, Options{}, func() { calls.Add(1) })
	defer e.Close()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != 1 {
		t.Fatalf("%d calls before Events", calls.Load())
	}
	if e.Events()&CipherReady == 0 {
		t.Fatal("the ClientHello is not reported")
	}
	e.Feed([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")) // fails the handshake: news
	for calls.Load() == 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if calls.Load() != 2 || e.Events()&Failed == 0 {
		t.Fatalf("%d calls, events %b", calls.Load(), e.Events())
	}
}

// An idle session, after traffic both ways, runs no goroutine and holds no
// queue memory.
func TestIdleHoldsNothing(t *testing.T) {
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{})
	p.cli.Write([]byte("ping"))
	var got bytes.Buffer
	p.until("the ping", func() bool { readAll(p.srv, &got); return got.Len() == 4 })
	p.srv.Write([]byte("pong"))
	got.Reset()
	p.until("the pong", func() bool { readAll(p.cli, &got); return got.Len() == 4 })
	p.settle()
	deadline := time.Now().Add(3 * time.Second)
	for ssltest.EngineGoroutines() != "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if left := ssltest.EngineGoroutines(); left != "" {
		t.Fatalf("goroutines of idle sessions:\n%s", left)
	}
	for _, e := range []*Engine{p.cli, p.srv} {
		e.mu.Lock()
		for _, q := range []*ring{&e.cin, &e.cout, &e.pin, &e.pout} {
			if q.r != nil {
				t.Errorf("an idle queue holds %d bytes of memory", q.r.Cap())
			}
		}
		e.mu.Unlock()
	}
}

// After the handshake, Write seals on the caller's goroutine: the records
// are queued when it returns, without a notify, and what crypto/tls made of
// them decrypts to the same bytes on the other side.
func TestWriteSealsOnCaller(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			p := newPair(t, version, Options{})
			p.until("the handshake and its tickets", func() bool {
				return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 && len(p.srv.Cipher()) == 0
			})
			p.settle()
			drain(p.wake)
			p.srv.Events() // armed: a notify would show in p.wake
			data := make([]byte, 64<<10)
			rand.Read(data)
			n, err := p.srv.Write(data)
			if err != nil || n != len(data) {
				t.Fatalf("Write took %d of %d: %v", n, len(data), err)
			}
			if got := p.srv.Buffered(); got <= len(data) {
				t.Fatalf("the engine holds %d bytes when Write returns, want more than the %d plaintext bytes, sealed", got, len(data))
			}
			select {
			case <-p.wake:
				t.Error("sealing on the caller notified it")
			default:
			}
			var got bytes.Buffer
			p.until("the plaintext", func() bool {
				readAll(p.cli, &got)
				return got.Len() == len(data)
			})
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("bytes lost or reordered")
			}
		})
	}
}

// Sealing a chunk allocates nothing, nor does sending it.
func TestSealAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; `go test` without -race counts")
	}
	p := newPair(t, tls.VersionTLS13, Options{})
	p.until("the handshake", func() bool { return p.srv.Events()&Handshaken != 0 && p.cli.Events()&Handshaken != 0 })
	p.settle()
	chunk := make([]byte, 16<<10)
	sealAndSend := func() {
		if n, err := p.srv.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write took %d: %v", n, err)
		}
		for c := p.srv.Cipher(); len(c) > 0; c = p.srv.Cipher() {
			p.srv.Sent(len(c))
		}
	}
	for range 100 { // past crypto/tls's small first records
		sealAndSend()
	}
	if a := testing.AllocsPerRun(100, sealAndSend); a != 0 {
		t.Errorf("%v allocations per sealed chunk", a)
	}
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// After the handshake, Read decrypts on the caller what Feed queued: the
// plaintext is there as soon as the ciphertext is fed, without a notify.
func TestReadOpensOnCaller(t *testing.T) {
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{})
	p.until("the handshake", func() bool { return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 })
	p.settle()
	data := make([]byte, 40<<10)
	rand.Read(data)
	if n, err := p.cli.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write took %d: %v", n, err)
	}
	p.srv.ReadAfterFeed()
	drain(p.wake)
	p.srv.Events()
	if !carry(p.cli, p.srv) {
		t.Fatal("no ciphertext to carry")
	}
	buf := make([]byte, len(data)+1)
	n, err := p.srv.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("Read right after Feed: %d bytes, %v", n, err)
	}
	select {
	case <-p.wake:
		t.Error("decrypting on the caller notified it")
	default:
	}
	// A buffer smaller than the records leaves the rest for the next
	// Read, and PlainReady says so.
	p.cli.Write(data)
	carry(p.cli, p.srv)
	small := make([]byte, 1000)
	if n, _ := p.srv.Read(small); n != len(small) {
		t.Fatalf("Read %d bytes into %d", n, len(small))
	}
	if p.srv.Events()&PlainReady == 0 {
		t.Error("PlainReady not reported while crypto/tls holds decrypted bytes")
	}
}

// Records fed after the handshake but before the caller's first Read (the
// connector is still busy with the handshake's outcome) are decrypted by a
// goroutine and announced: nobody would read them otherwise, since the
// socket that brought them has nothing more to say.
func TestFeedBeforeFirstReadAnnounced(t *testing.T) {
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{})
	p.until("the handshake", func() bool { return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 })
	p.settle()
	p.cli.Write([]byte("early"))
	p.until("PlainReady without a Read", func() bool { return p.srv.Events()&PlainReady != 0 })
	var got bytes.Buffer
	readAll(p.srv, &got)
	if got.String() != "early" {
		t.Fatalf("read %q", got.String())
	}
}

// More tells a caller that reads on its own goroutine what its last Read
// left: nothing after a Read that took all, the end when the peer's
// close_notify came with the data, though Read returned only the data.
func TestMoreAfterLastRecord(t *testing.T) {
	ssltest.CheckGoroutines(t)
	p := newPair(t, tls.VersionTLS13, Options{})
	p.until("the handshake", func() bool { return p.cli.Events()&Handshaken != 0 && p.srv.Events()&Handshaken != 0 })
	p.settle()
	p.srv.ReadAfterFeed()
	buf := make([]byte, 100)
	p.cli.Write([]byte("some"))
	carry(p.cli, p.srv)
	if n, err := p.srv.Read(buf); n != 4 || err != nil || p.srv.More() {
		t.Fatalf("Read %d bytes, %v; More %v", n, err, p.srv.More())
	}
	p.cli.Write([]byte("last"))
	p.cli.CloseWrite()
	p.until("close_notify sealed", func() bool { return p.cli.Events()&WriteShut != 0 })
	carry(p.cli, p.srv)
	if n, err := p.srv.Read(buf); n != 4 || err != nil || !p.srv.More() {
		t.Fatalf("Read %d bytes, %v; More %v (the end is still to report)", n, err, p.srv.More())
	}
	if n, err := p.srv.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read %d bytes, %v; want EOF", n, err)
	}
}
