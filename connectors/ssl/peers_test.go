package ssl

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// echoBackend echoes every connection it accepts until the test ends, as
// a TLS server with cfg unless cfg is nil, and returns its port.
func echoBackend(t *testing.T, cfg *tls.Config) int {
	return nproxytest.ServeTCP(t, func(c net.Conn) { echo(c, cfg) })
}

// echo sends back what c reads until EOF, then closes c: after a
// half-close in clear, with close_notify under TLS.
func echo(c net.Conn, cfg *tls.Config) {
	if cfg == nil {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
		c.Close()
		return
	}
	tc := tls.Server(c, cfg)
	io.Copy(tc, tc)
	tc.Close()
}

// checkFDs fails the test if it leaves sockets open. Other descriptors
// (the loop's pipe pool, epoll) belong to the core and may be kept.
func checkFDs(t *testing.T) {
	before := nproxytest.Sockets()
	t.Cleanup(func() {
		for deadline := time.Now().Add(3 * time.Second); len(nproxytest.Sockets()) > len(before) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if after := nproxytest.Sockets(); len(after) > len(before) {
			t.Errorf("sockets before: %v, after: %v", before, after)
		}
	})
}

// openssl s_client through an ssl in to an echo server, TLS 1.2 and 1.3.
func TestInWithOpenSSLClient(t *testing.T) {
	certs := ssltest.New(t)
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		t.Run(v, func(t *testing.T) {
			ssltest.CheckGoroutines(t)
			port := nproxytest.FreePort(t)
			proxy(t, sslIn(certs, port), tcpOut(echoBackend(t, nil)))
			cmd, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", fmt.Sprint("127.0.0.1:", port), v,
				"-CAfile", certs.CA, "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-no_ign_eof")
			data := lines(3000)
			go stdin.Write(data)
			echoed := make([]byte, len(data))
			if _, err := io.ReadFull(stdout, echoed); err != nil || !bytes.Equal(echoed, data) {
				t.Fatalf("echo: %v", err)
			}
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("s_client: %v", err)
			}
		})
	}
}

// viaOutTo starts openssl s_server with cert and key and a proxy from a
// tcp in to an ssl out to it that trusts certs' CA; it returns a client of
// the proxy, the proxy's log and s_server's port.
func viaOutTo(t *testing.T, certs *ssltest.Certs, cert, key string) (*end, *nproxytest.LogBuffer, string) {
	t.Helper()
	_, sport, _ := net.SplitHostPort(sServer(t, "-cert", cert, "-key", key))
	port := nproxytest.FreePort(t)
	out := sslOut(certs, 0)
	fmt.Sscan(sport, &out.Port)
	logs := proxy(t, tcpIn(port), out)
	return newEnd(dial(t, fmt.Sprint("127.0.0.1:", port))), logs, sport
}

// An ssl out verifies openssl s_server and talks to it.
func TestOutWithOpenSSLServer(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	client, _, _ := viaOutTo(t, certs, certs.ServerCert, certs.ServerKey)
	data := lines(500)
	go client.Write(data)
	got := make([]byte, len(data))
	if _, err := io.ReadFull(client.R, got); err != nil || !bytes.Equal(got, reversed(data)) {
		t.Fatalf("reversed lines: %v", err)
	}
}

// An ssl out refuses a server it cannot verify: the client is closed and
// the log says why.
func TestOutVerifyFailure(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	client, logs, sport := viaOutTo(t, certs, certs.OtherCert, certs.OtherKey)
	client.expectEOF(t)
	logs.WaitFor(t, "ssl out to 127.0.0.1 port "+sport+": TLS handshake: tls: failed to verify certificate: x509: certificate signed by unknown authority")
}

// curl --cacert through an ssl in in front of a plain HTTP server.
func TestCurlThroughSSLIn(t *testing.T) {
	curl := nproxytest.Command(t, "curl")
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	l := nproxytest.Listener(t)
	body := strings.Repeat("zlonk ", 20000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := nproxytest.FreePort(t)
	proxy(t, sslIn(certs, port), tcpOut(l.Addr().(*net.TCPAddr).Port))
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--cacert", certs.CA,
		fmt.Sprintf("https://localhost:%d/", port)).CombinedOutput()
	if err != nil || string(out) != body {
		t.Fatalf("curl: %v, %d bytes: %.200q", err, len(out), out)
	}
}

// Bad clients of an ssl in: plain text is refused with a log line, and a
// client stalled mid-handshake delays no one and is cut at the deadline.
func TestInBadClients(t *testing.T) {
	ssltest.CheckGoroutines(t)
	checkFDs(t)
	certs := ssltest.New(t)
	port := nproxytest.FreePort(t)
	in := sslIn(certs, port)
	in.Timeout = time.Second
	logs := proxy(t, in, tcpOut(echoBackend(t, nil)))
	addr := fmt.Sprint("127.0.0.1:", port)

	// The deadline runs from the accept, which cannot come before the dial
	// starts: start is taken first, so that the check below is exact.
	start := time.Now()
	stalled := newEnd(dial(t, addr))
	defer stalled.Close()
	stalled.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01})

	plain := newEnd(dial(t, addr))
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.0\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, plain) // the alert, then EOF
	logs.WaitFor(t, "does not look like a TLS handshake")
	if n := nproxy.DefaultServer.Proxies()[0].Stats().HandshakeFailures[connectors.HandshakeTLS]; n == 0 {
		t.Error("the refused TLS handshake was not counted")
	}

	for i := range 10 {
		c, err := tls.Dial("tcp", addr, tlsClientConfig(t, certs))
		if err != nil {
			t.Fatal(err)
		}
		e := newEnd(c)
		fmt.Fprintf(e, "client %d\n", i)
		e.Expect(t, fmt.Sprintf("client %d\n", i))
		e.Close()
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("10 handshakes took %v next to a stalled one", took)
	}
	stalled.expectEOF(t)
	if took := time.Since(start); took < time.Second || took > 3*time.Second {
		t.Errorf("the stalled client was closed after %v, deadline 1 s", took)
	}
	logs.WaitFor(t, "TLS handshake timed out")
}

// Many handshakes while a bulk stream flows, all through one loop.
func TestHandshakesDuringBulk(t *testing.T) {
	ssltest.CheckGoroutines(t)
	checkFDs(t)
	certs := ssltest.New(t)
	port := nproxytest.FreePort(t)
	proxy(t, sslIn(certs, port), tcpOut(echoBackend(t, nil)))
	addr := fmt.Sprint("127.0.0.1:", port)
	cfg := tlsClientConfig(t, certs)

	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	bulk, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bulk.SetDeadline(time.Now().Add(30 * time.Second))
	bulkDone := make(chan error, 1)
	go func() {
		_, err := bulk.Write(data)
		bulk.CloseWrite()
		bulkDone <- err
	}()
	hashDone := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, bulk)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		hashDone <- sum
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line := fmt.Sprintf("handshake %d\n", i)
			io.WriteString(c, line)
			got := make([]byte, len(line))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != line {
				errs <- fmt.Errorf("client %d: %q %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-bulkDone; err != nil {
		t.Fatal(err)
	}
	if sum := <-hashDone; sum != sha256.Sum256(data) {
		t.Fatal("the bulk stream came back damaged")
	}
	bulk.Close()
}

// One-way bulk streams through an ssl in, both ways. Into a fast server the
// engine's plaintext queue is full for long stretches; out of one, the
// relay's backpressure waits on the engine's encryption, which must wake it
// when its queue drains: the relay does not watch the fd meanwhile.
func TestBulkOneWay(t *testing.T) {
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, toServer := range []bool{true, false} {
		t.Run(map[bool]string{true: "client-to-server", false: "server-to-client"}[toServer], func(t *testing.T) {
			oneWay(t, data, toServer, func(r io.Reader) io.Reader { return r })
		})
	}
}

// oneWay streams data through an ssl in, from a TLS client to a tcp server
// (toServer) or back, and checks that it arrives whole within 20 s; the
// server reads through slow.
func oneWay(t *testing.T, data []byte, toServer bool, slow func(io.Reader) io.Reader) {
	ssltest.CheckGoroutines(t)
	want := sha256.Sum256(data)
	certs := ssltest.New(t)
	l := nproxytest.Listener(t)
	sum := make(chan [32]byte, 2)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if toServer {
			sum <- hashAll(slow(c))
		} else {
			c.Write(data)
		}
	}()
	port := nproxytest.FreePort(t)
	proxy(t, sslIn(certs, port), tcpOut(l.Addr().(*net.TCPAddr).Port))
	c, err := tls.Dial("tcp", fmt.Sprint("127.0.0.1:", port), tlsClientConfig(t, certs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if toServer {
		go func() {
			c.Write(data)
			c.CloseWrite()
			c.NetConn().(*net.TCPConn).CloseWrite()
		}()
	} else {
		go func() { sum <- hashAll(c) }()
	}
	select {
	case s := <-sum:
		if s != want {
			t.Fatal("the stream arrived damaged")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream stalled")
	}
}

func hashAll(r io.Reader) [32]byte {
	h := sha256.New()
	io.Copy(h, r)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TLS 1.3 key updates, asked for by openssl s_client (its K command: update
// yours too), are answered mid-stream and the stream goes on.
func TestKeyUpdate(t *testing.T) {
	ssltest.CheckGoroutines(t)
	certs := ssltest.New(t)
	port := nproxytest.FreePort(t)
	proxy(t, sslIn(certs, port), tcpOut(echoBackend(t, nil)))
	cmd, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", fmt.Sprint("127.0.0.1:", port), "-tls1_3",
		"-CAfile", certs.CA, "-verify_return_error", "-no_ign_eof")
	lines := make(chan string, 100)
	go func() {
		for {
			line, err := stdout.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- line
		}
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("s_client ended before %q", want)
				}
				if line == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q from s_client", want)
			}
		}
	}
	io.WriteString(stdin, "before the update\n")
	expect("before the update\n")
	for i := range 3 {
		io.WriteString(stdin, "K\n") // s_client says KEYUPDATE on stderr
		// s_client takes a whole read of its stdin for the command: the
		// next line must come in a read of its own.
		time.Sleep(200 * time.Millisecond)
		line := fmt.Sprintf("after update %d\n", i)
		io.WriteString(stdin, line)
		expect(line)
	}
	stdin.Close()
	cmd.Wait()
	if n := strings.Count(cmd.Stderr.(*bytes.Buffer).String(), "KEYUPDATE"); n != 3 {
		t.Errorf("s_client made %d key updates, not 3", n)
	}
}

// A server slower than its TLS client holds the relay back while the
// engine still holds records it decrypts on the loop: they must be
// delivered once the server catches up, though the client's socket,
// drained, will not call again.
func TestSlowServerBehindTLSClient(t *testing.T) {
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	oneWay(t, data, true, func(r io.Reader) io.Reader { return slowReader{r} })
}

// slowReader reads at most 16 KiB at a time, a millisecond apart.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 16<<10)])
}
