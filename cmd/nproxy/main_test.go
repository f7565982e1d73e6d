// Black-box tests of the nproxy command. TestMain (testmain_test.go)
// builds the binary once, with the race detector, into nproxyBin; each test
// here runs it against real peers on
// 127.0.0.1 (socat echo servers, Go listeners where a test needs to hold the
// server end itself), reading only what a user sees: exit status, stderr,
// bytes on the wire and the process's /proc entries.
//
//	go test -race ./cmd/nproxy/
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// eventually polls cond every 10 ms for at most d and reports whether it
// became true.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// mustEventually is eventually that fails the test on timeout.
func mustEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventually(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// listenSockets maps the inode of each TCP socket, IPv4 or IPv6, listening
// on port to the length of its accept queue. It reads /proc/net so that
// checking does not connect (a connection would count against
// --max-connections).
func listenSockets(port int) map[string]int {
	sockets := map[string]int{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, _ := os.ReadFile(f) // tcp6 is absent without IPv6
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // 0A is TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			// For a listener, rx_queue is the number of clients waiting
			// to be accepted.
			_, hexQueued, _ := strings.Cut(fields[4], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(n) == port {
				queued, _ := strconv.ParseUint(hexQueued, 16, 32)
				sockets[fields[9]] = int(queued)
			}
		}
	}
	return sockets
}

// fdCounts sorts a process's open files by kind; sockets holds the inodes
// of its sockets.
type fdCounts struct {
	sockets map[string]bool
	pipes   int
	others  int
}

func openFiles(pid int) (fdCounts, error) {
	c := fdCounts{sockets: map[string]bool{}}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return c, err
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		switch {
		case err != nil: // closed while we looked
		case strings.HasPrefix(link, "socket:["):
			c.sockets[strings.Trim(link[len("socket:"):], "[]")] = true
		case strings.HasPrefix(link, "pipe:["):
			c.pipes++
		default:
			c.others++
		}
	}
	return c, nil
}

// listeners counts pid's sockets listening on port.
func listeners(pid, port int) int {
	files, err := openFiles(pid)
	if err != nil {
		return 0
	}
	n := 0
	for inode := range listenSockets(port) {
		if files.sockets[inode] {
			n++
		}
	}
	return n
}

// unusedPort returns a port that was free on ip a moment ago.
func unusedPort(t *testing.T, ip string) int {
	t.Helper()
	return nproxytest.FreePortOn(t, ip)
}

func addrOf(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// tcpSpec is a --in or --out value for the tcp connector.
func tcpSpec(ip string, port int) string { return fmt.Sprintf("type=tcp,host=%s,port=%d", ip, port) }

// startProxy runs nproxy with args plus a tcp relay from ip:in to ip:out,
// and waits until it listens.
func startProxy(t *testing.T, ip string, in, out int, args ...string) *child {
	t.Helper()
	args = append(args, "--in", tcpSpec(ip, in), "--out", tcpSpec(ip, out))
	p := startChild(t, nproxyBin, args...)
	waitListening(t, p, in)
	return p
}

// socatEcho starts a socat echo server on ip and returns its port.
func socatEcho(t *testing.T, ip string) int {
	t.Helper()
	path := nproxytest.Command(t, "socat")
	port := unusedPort(t, ip)
	listen := fmt.Sprintf("TCP4-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=512", port, ip)
	if strings.Contains(ip, ":") {
		listen = fmt.Sprintf("TCP6-LISTEN:%d,bind=[%s],reuseaddr,fork,backlog=512", port, ip)
	}
	p := startChild(t, path, listen, "PIPE")
	waitListening(t, p, port)
	return port
}

// goServer is a Go listener whose connections the test holds itself.
type goServer struct {
	ln    net.Listener
	conns chan net.Conn

	mu       sync.Mutex
	accepted []net.Conn
	closed   bool
}

func newGoServer(t *testing.T, addr string) *goServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &goServer{ln: ln, conns: make(chan net.Conn, 1024)}
	go b.serve()
	t.Cleanup(b.close)
	return b
}

func (b *goServer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		closed := b.closed
		if !closed {
			b.accepted = append(b.accepted, c)
		}
		b.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		b.conns <- c
	}
}

// close closes the listener and every connection it accepted.
func (b *goServer) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, c := range b.accepted {
		c.Close()
	}
}

func (b *goServer) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

// accept returns the next connection the proxy opened to the backend.
func (b *goServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-b.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy did not connect to the server within 5 s")
		return nil
	}
}

// goEcho serves an echo on addr with Go: for tests that open connections
// faster than socat forks. It returns the port.
func goEcho(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.ServeOn(t, ln, nproxytest.Echo)
	return ln.Addr().(*net.TCPAddr).Port
}

// dialClient connects a client, closed at the end of the test; every
// operation on it must finish within 30 s.
func dialClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// echoRoundTrip writes data to c in random chunks while reading it back,
// and checks that the echo is byte-exact.
func echoRoundTrip(c net.Conn, data []byte, rng *rand.Rand) error {
	written := make(chan error, 1)
	sizes := make([]int, 0, 64)
	for n := 0; n < len(data); {
		size := min(1+rng.IntN(64<<10), len(data)-n)
		sizes = append(sizes, size)
		n += size
	}
	go func() {
		off := 0
		for _, size := range sizes {
			if _, err := c.Write(data[off : off+size]); err != nil {
				written <- err
				return
			}
			off += size
		}
		written <- nil
	}()
	got := make([]byte, len(data))
	n, err := io.ReadFull(c, got)
	if werr := <-written; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read %d of %d bytes: %w", n, len(data), err)
	}
	if !bytes.Equal(got, data) {
		i := nproxytest.FirstDiff(got, data)
		return fmt.Errorf("echo differs at byte %d of %d", i, len(data))
	}
	return nil
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// newRand returns a generator from a seed logged for replay.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// sendLine writes line on from and expects it, intact, on to.
func sendLine(t *testing.T, from, to net.Conn, line string) {
	t.Helper()
	if _, err := from.Write([]byte(line)); err != nil {
		t.Fatalf("writing %q: %v", line, err)
	}
	got := make([]byte, len(line))
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("reading %q: %v (got %q)", line, err, got)
	}
	if string(got) != line {
		t.Fatalf("sent %q, received %q", line, got)
	}
}

// exchangeLines relays n lines between client and server, each in a random
// direction, as Net::Proxy's tests do.
func exchangeLines(t *testing.T, rng *rand.Rand, client, server net.Conn, n int) {
	t.Helper()
	for i := range n {
		if rng.IntN(2) == 0 {
			sendLine(t, client, server, fmt.Sprintf("client line %d zlonk\n", i))
		} else {
			sendLine(t, server, client, fmt.Sprintf("server line %d crraack\n", i))
		}
	}
}

func TestRelayLinesAndBulk(t *testing.T) {
	t.Parallel()
	echo := socatEcho(t, "127.0.0.1")
	in := unusedPort(t, "127.0.0.1")
	startProxy(t, "127.0.0.1", in, echo)
	rng := newRand(t)

	c := dialClient(t, addrOf("127.0.0.1", in))
	for i := range 10 {
		line := fmt.Sprintf("line %d: zlonk zok zapeth crunch_eth crraack\n", i)
		if err := echoRoundTrip(c, []byte(line), rng); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}

	const conns, size = 3, 3 << 20
	var wg sync.WaitGroup
	for i := range conns {
		c := dialClient(t, addrOf("127.0.0.1", in))
		data, crng := randomBytes(rng, size), rand.New(rand.NewPCG(rng.Uint64(), 0))
		wg.Go(func() {
			if err := echoRoundTrip(c, data, crng); err != nil {
				t.Errorf("connection %d, %d MiB: %v", i, size>>20, err)
			}
		})
	}
	wg.Wait()
}

// strace is the path of a strace that can trace here (ptrace may be
// forbidden in a container), or "".
var strace = sync.OnceValue(func() string {
	path, err := exec.LookPath("strace")
	if err != nil || exec.Command(path, "-qq", "-o", os.DevNull, "true").Run() != nil {
		return ""
	}
	return path
})

// configError runs nproxy with args, expecting a configuration error. Under
// strace (when it works) it also counts listen(2) calls, since nothing may
// listen before the configuration is known to be good.
func configError(t *testing.T, args ...string) (code int, stderr string, listens int) {
	t.Helper()
	listens = -1
	name := nproxyBin
	var trace string
	if path := strace(); path != "" {
		trace = filepath.Join(t.TempDir(), "strace")
		args = append([]string{"-f", "-qq", "-e", "trace=listen", "-e", "signal=none", "-o", trace, nproxyBin}, args...)
		name = path
	}
	p := startChild(t, name, args...)
	code = p.exitCode(t, 20*time.Second)
	if out := p.stdout.String(); out != "" {
		t.Errorf("stdout should be empty, got %q", out)
	}
	if trace != "" {
		data, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		listens = strings.Count(string(data), "listen(")
	}
	return code, p.stderr.String(), listens
}

// checkConfigError runs a bad configuration and checks the contract: exit
// status 2, one line on stderr containing every word, nothing listened.
func checkConfigError(t *testing.T, args []string, words []string) {
	t.Helper()
	code, stderr, listens := configError(t, args...)
	if code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(stderr, "nproxy: ") {
		t.Errorf("want one line \"nproxy: ...\" on stderr, got %d:\n%s", len(lines), stderr)
	}
	for _, w := range words {
		if !strings.Contains(stderr, w) {
			t.Errorf("message %q does not say %q", strings.TrimSpace(stderr), w)
		}
	}
	switch {
	case listens < 0:
		t.Log("strace is not installed or cannot trace here: not checking that nothing listened")
	case listens > 0:
		t.Errorf("nproxy called listen(2) %d times before reporting the error: a bad configuration must be found before anything listens", listens)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	p1, p2 := unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
	in := tcpSpec("127.0.0.1", p1)
	out := tcpSpec("127.0.0.1", p2)
	cases := []struct {
		name  string
		args  []string
		words []string
	}{
		{"unknown type", []string{"--in", "type=zlonk,port=6789", "--out", out}, []string{"proxy #1", "'in'", "type", "zlonk"}},
		{"unknown type out", []string{"--in", in, "--out", "type=zlonk,port=6789"}, []string{"proxy #1", "'out'", "type", "zlonk"}},
		{"unknown type second proxy", []string{"--in", in, "--out", out, "--in", tcpSpec("127.0.0.1", p2), "--out", "type=zlonk"}, []string{"proxy #2", "'out'", "zlonk"}},
		{"unknown key", []string{"--in", in + ",colour=red", "--out", out}, []string{"proxy #1", "'in'", "colour"}},
		{"missing port", []string{"--in", "type=tcp,host=127.0.0.1", "--out", out}, []string{"proxy #1", "'in'", "port", "required"}},
		{"missing out host", []string{"--in", in, "--out", "type=tcp,port=80"}, []string{"proxy #1", "'out'", "host", "required"}},
		{"port out of range", []string{"--in", "type=tcp,host=127.0.0.1,port=70000", "--out", out}, []string{"proxy #1", "'in'", "port", "70000"}},
		{"port zero", []string{"--in", in, "--out", "type=tcp,host=127.0.0.1,port=0"}, []string{"proxy #1", "'out'", "port 0"}},
		{"port not a number", []string{"--in", "type=tcp,host=127.0.0.1,port=http", "--out", out}, []string{"proxy #1", "'in'", "port", "http"}},
		{"missing type", []string{"--in", "host=127.0.0.1,port=6789", "--out", out}, []string{"proxy #1", "'in'", "type"}},
		{"in without out", []string{"--in", in}, []string{"--in", "--out"}},
		{"out without in", []string{"--out", out}, []string{"--in", "--out"}},
		{"key given twice", []string{"--in", in + ",port=1", "--out", out}, []string{"in", "port", "got a list"}},
		{"no proxy", []string{"-v"}, []string{"--in", "--out", "-c"}},
		{"unknown option", []string{"--frobnicate", "--in", in, "--out", out}, []string{"unknown option", "--frobnicate"}},
		{"option without value", []string{"--in", in, "--out", out, "--max-connections"}, []string{"--max-connections"}},
		{"option not a number", []string{"--loops", "two", "--in", in, "--out", out}, []string{"--loops", "two"}},
		{"missing file", []string{"-c", "testdata/absent.yaml"}, []string{"testdata/absent.yaml"}},
		{"yaml unknown key", []string{"-c", "testdata/unknown-key.yaml"}, []string{"unknown-key.yaml", "bogus"}},
		{"yaml unknown proxy key", []string{"-c", "testdata/unknown-proxy-key.yaml"}, []string{"unknown-proxy-key.yaml", "hook"}},
		{"yaml unknown connector key", []string{"-c", "testdata/connector-key.yaml"}, []string{"proxy #1", "'in'", "colour"}},
		{"yaml missing out", []string{"-c", "testdata/missing-out.yaml"}, []string{"missing-out.yaml", "proxy #1", "out", "required"}},
		{"yaml missing in", []string{"-c", "testdata/missing-in.yaml"}, []string{"missing-in.yaml", "proxy #1", "in", "required"}},
		{"yaml no proxies", []string{"-c", "testdata/no-proxies.yaml"}, []string{"proxy"}},
		{"yaml syntax", []string{"-c", "testdata/syntax.yaml"}, []string{"syntax.yaml", "line"}},
		{"yaml negative pipe size", []string{"-c", "testdata/negative-pipe-size.yaml"}, []string{"pipe_size", "-1"}},
		{"negative pipe size", []string{"--pipe-size", "-1", "--in", in, "--out", out}, []string{"--pipe-size", "pipe_size -1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkConfigError(t, tc.args, tc.words)
		})
	}
}

// holdPort keeps a Go listener on a free port for the test.
func holdPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestAddressInUse(t *testing.T) {
	t.Parallel()
	held, free, out := holdPort(t), unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
	t.Run("only proxy", func(t *testing.T) {
		t.Parallel()
		args := []string{"--in", tcpSpec("127.0.0.1", held), "--out", tcpSpec("127.0.0.1", out)}
		checkConfigError(t, args, []string{"proxy #1", "'in'", fmt.Sprintf("can't listen on 127.0.0.1 port %d", held)})
	})
	t.Run("second proxy", func(t *testing.T) {
		t.Parallel()
		// Binding every address before listening on any finds the error
		// while nothing listens yet.
		args := []string{
			"--in", tcpSpec("127.0.0.1", free), "--out", tcpSpec("127.0.0.1", out),
			"--in", tcpSpec("127.0.0.1", held), "--out", tcpSpec("127.0.0.1", out),
		}
		checkConfigError(t, args, []string{"proxy #2", "'in'", fmt.Sprintf("can't listen on 127.0.0.1 port %d", held)})
	})
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg   string
		words []string
	}{
		{"--version", []string{"nproxy "}},
		{"--help", []string{"--in SPEC --out SPEC", "-c FILE", "tcp", "dummy"}},
	} {
		p := startChild(t, nproxyBin, tc.arg)
		if code := p.exitCode(t, 10*time.Second); code != 0 {
			t.Errorf("%s: exit status %d, want 0", tc.arg, code)
		}
		for _, w := range tc.words {
			if !strings.Contains(p.stdout.String(), w) {
				t.Errorf("%s: stdout does not say %q:\n%s", tc.arg, w, p.stdout.String())
			}
		}
	}
}

// relayConfig is what testdata/relay.yaml.tmpl needs.
type relayConfig struct {
	Verbosity, Max, Loops, BufferSize int
	InPort, OutPort                   int
}

// writeConfig renders testdata/relay.yaml.tmpl into a file of the test.
func writeConfig(t *testing.T, c relayConfig) string {
	t.Helper()
	tmpl, err := template.ParseFiles("testdata/relay.yaml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nproxy.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tmpl.Execute(f, c); err != nil {
		t.Fatal(err)
	}
	return path
}

// startConfig runs nproxy -c with c and waits until it listens.
func startConfig(t *testing.T, c relayConfig) *child {
	t.Helper()
	p := startChild(t, nproxyBin, "-c", writeConfig(t, c))
	waitListening(t, p, c.InPort)
	return p
}

// A command-line option overrides the file, before -c as well as after.
func TestOptionsOverrideFile(t *testing.T) {
	t.Parallel()
	echo := socatEcho(t, "127.0.0.1")
	for _, order := range []string{"before", "after"} {
		in := unusedPort(t, "127.0.0.1")
		conf := writeConfig(t, relayConfig{Loops: 1, BufferSize: 16384, InPort: in, OutPort: echo})
		args := []string{"--loops", "2", "-c", conf}
		if order == "after" {
			args = []string{"-c", conf, "--loops", "2"}
		}
		p := startChild(t, nproxyBin, args...)
		waitListening(t, p, in)
		if n := listeners(p.pid(), in); n != 2 {
			t.Errorf("--loops 2 %s -c: %d listeners, want 2", order, n)
		}
	}
}

func TestConfigFileRelay(t *testing.T) {
	t.Parallel()
	echo := socatEcho(t, "127.0.0.1")
	in := unusedPort(t, "127.0.0.1")
	p := startConfig(t, relayConfig{Verbosity: 2, Loops: 2, BufferSize: 0, InPort: in, OutPort: echo})
	if n := listeners(p.pid(), in); n != 2 {
		t.Errorf("loops: 2 should give 2 SO_REUSEPORT listeners, found %d", n)
	}
	rng := newRand(t)
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("zlonk zok zapeth\n"), rng); err != nil {
		t.Fatal(err)
	}
	if err := echoRoundTrip(c, randomBytes(rng, 1<<20), rng); err != nil {
		t.Fatal(err)
	}
	want := "connection from " + c.LocalAddr().String()
	mustEventually(t, 5*time.Second, "verbosity: 2 to log "+want, func() bool {
		return strings.Contains(p.stderr.String(), want)
	})
}

// TestConfigFileTCPTCP is Net::Proxy's tcp_tcp scenario through the command
// with max_connections: 1.
func TestConfigFileTCPTCP(t *testing.T) {
	t.Parallel()
	server := newGoServer(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startConfig(t, relayConfig{Max: 1, Loops: 1, BufferSize: 16384, InPort: in, OutPort: server.port()})
	rng := newRand(t)

	client := dialClient(t, addrOf("127.0.0.1", in))
	sc := server.accept(t)
	exchangeLines(t, rng, client, sc, 4)

	// The listener closes once max connections were opened.
	if c, err := net.DialTimeout("tcp", addrOf("127.0.0.1", in), 2*time.Second); err == nil {
		c.Close()
		t.Errorf("a second client was accepted after max_connections: 1 was opened")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("second client: want connection refused, got %v", err)
	}
	if p.exited() {
		t.Fatalf("nproxy exited while its connection was open: %v", p.cmd.ProcessState)
	}
	client.Close()
	nproxytest.ExpectEOF(t, sc, 5*time.Second)
	// The relay half-closes: the connection is done once the server, told
	// of the client's end, closes too.
	sc.Close()
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d after max_connections were processed, want 0", code)
	}
}

// TestMaxConnectionsWaitsForAll checks that the process exits once the
// last of max connections ends, not when the first does.
func TestMaxConnectionsWaitsForAll(t *testing.T) {
	t.Parallel()
	server := newGoServer(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, server.port(), "--max-connections", "2")
	first, second := dialClient(t, addrOf("127.0.0.1", in)), dialClient(t, addrOf("127.0.0.1", in))
	s1, s2 := server.accept(t), server.accept(t)
	sendLine(t, first, s1, "first\n")
	sendLine(t, second, s2, "second\n")

	first.Close()
	nproxytest.ExpectEOF(t, s1, 5*time.Second)
	s1.Close()
	time.Sleep(200 * time.Millisecond)
	if p.exited() {
		t.Fatalf("nproxy exited after 1 of 2 connections: %v", p.cmd.ProcessState)
	}
	sendLine(t, s2, second, "still relaying\n")
	s2.Close()
	nproxytest.ExpectEOF(t, second, 5*time.Second)
	second.Close()
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range stopSignals {
		t.Run(sig.name, func(t *testing.T) {
			t.Parallel()
			server := newGoServer(t, "127.0.0.1:0")
			in := unusedPort(t, "127.0.0.1")
			// A drain (TERM, USR1) cuts the connection the test holds
			// after the grace period.
			p := startProxy(t, "127.0.0.1", in, server.port(), "-v", "--grace", "0.5")
			client := dialClient(t, addrOf("127.0.0.1", in))
			sc := server.accept(t)
			sendLine(t, client, sc, "before the signal\n")
			sendLine(t, sc, client, "answer\n")

			p.signal(t, sig.sig)
			nproxytest.ExpectEOF(t, client, 5*time.Second)
			nproxytest.ExpectEOF(t, sc, 5*time.Second)
			if code := p.exitCode(t, 5*time.Second); code != 0 {
				t.Errorf("exit status %d after SIG%s, want 0", code, sig.name)
			}
			if want := "Caught " + sig.name + " signal"; !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, p.stderr.String())
			}
		})
	}
}

var logLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \S.*$`)

// checkLogLines checks that every line of stderr has Net::Proxy's format,
// stamped with the local time of the test.
func checkLogLines(t *testing.T, stderr string, since time.Time) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("log line %q is not \"YYYY-MM-DD HH:MM:SS message\"", line)
			continue
		}
		at, err := time.ParseInLocation(time.DateTime, m[1], time.Local)
		if err != nil || at.Before(since.Truncate(time.Second)) || at.After(time.Now()) {
			t.Errorf("log line %q: time not between %v and now (%v)", line, since, err)
		}
	}
}

// runOneConnection relays one echo through a proxy started with args, stops
// it with SIGTERM and returns its stderr and the client's address.
func runOneConnection(t *testing.T, args ...string) (stderr, client string) {
	t.Helper()
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, echo, args...)
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("zlonk\n"), newRand(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(200 * time.Millisecond) // let the close be logged, if it is
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	return p.stderr.String(), c.LocalAddr().String()
}

func TestLogFormat(t *testing.T) {
	t.Parallel()
	t.Run("verbosity 0", func(t *testing.T) {
		t.Parallel()
		if stderr, _ := runOneConnection(t); stderr != "" {
			t.Errorf("verbosity 0 should log nothing for a normal connection, got:\n%s", stderr)
		}
	})
	t.Run("-v", func(t *testing.T) {
		t.Parallel()
		since := time.Now()
		stderr, client := runOneConnection(t, "-v")
		checkLogLines(t, stderr, since)
		if !strings.Contains(stderr, "Caught TERM signal") {
			t.Errorf("-v should log the signal (a notice), got:\n%s", stderr)
		}
		// Net::Proxy's level 1 lines, and the access line.
		if !strings.Contains(stderr, "Accepted "+client+" -> ") || !strings.Contains(stderr, "access proxy=#1 client="+client) {
			t.Errorf("-v should log \"Accepted %s -> ...\" and its access line, got:\n%s", client, stderr)
		}
	})
	t.Run("-vv", func(t *testing.T) {
		t.Parallel()
		since := time.Now()
		stderr, client := runOneConnection(t, "-vv")
		checkLogLines(t, stderr, since)
		if !strings.Contains(stderr, "connection from "+client) {
			t.Errorf("-vv should log \"connection from %s\", got:\n%s", client, stderr)
		}
	})
}

// TestConnectFailure is Net::Proxy's tcp_fail: with no server, each client
// is closed promptly, counts as opened and closed, and the proxy serves on.
func TestConnectFailure(t *testing.T) {
	t.Parallel()
	dead := unusedPort(t, "127.0.0.1")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, dead, "--max-connections", "3")
	for i := range 2 {
		c := dialClient(t, addrOf("127.0.0.1", in))
		begin := time.Now()
		nproxytest.ExpectEOF(t, c, 2*time.Second)
		t.Logf("client %d: EOF after %v", i, time.Since(begin))
	}
	// Errors are logged at any verbosity; stderr arrives through a pipe,
	// maybe after the EOF.
	mustEventually(t, 2*time.Second, "the failed connect to be logged", func() bool {
		return strings.Contains(p.stderr.String(), "refused")
	})

	goEcho(t, addrOf("127.0.0.1", dead))
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("the server is back\n"), newRand(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Exiting proves that the two failures counted as opened and closed.
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d after 3 connections, want 0", code)
	}
	// Once per burst, not per client: the second refusal is only counted,
	// for the summary line at the end of the burst.
	if n := strings.Count(p.stderr.String(), "refused"); n != 1 {
		t.Errorf("%d lines say refused after 2 refused clients, want 1:\n%s", n, p.stderr.String())
	}
}

// cpuTicks returns the user and system time of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which may hold spaces: state is [0],
	// utime [11], stime [12].
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return utime + stime
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	t.Parallel()
	prlimit := nproxytest.Command(t, "prlimit")
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	addr := addrOf("127.0.0.1", in)
	// At the default verbosity: an operator must learn that nproxy is at
	// its fd limit without asking for more messages. A maxconn above what
	// 40 fds allow (the default is sized on them) lets the shortage happen.
	p := startChild(t, prlimit, "--nofile=40:40", nproxyBin, "-c", yamlFile(t, "maxconn: 100000\n"),
		"--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", echo))
	waitListening(t, p, in)
	rng := newRand(t)
	kept := make([]net.Conn, 4)
	for i := range kept {
		kept[i] = dialClient(t, addr)
		if err := echoRoundTrip(kept[i], []byte("before the flood\n"), rng); err != nil {
			t.Fatal(err)
		}
	}

	// Each relayed client costs two fds: 60 clients need far more than 40.
	flood := make([]net.Conn, 0, 60)
	for range 60 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("flood client %d: %v", len(flood), err)
		}
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	mustEventually(t, 5*time.Second, "nproxy to say it is out of fds", func() bool {
		return strings.Contains(p.stderr.String(), "accept paused on 127.0.0.1:"+strconv.Itoa(in)+": too many open files")
	})

	before := cpuTicks(t, p.pid())
	time.Sleep(2 * time.Second)
	used := cpuTicks(t, p.pid()) - before
	t.Logf("CPU time used in 2 s out of fds: %d clock ticks", used)
	if used > 30 { // 0.3 s at Linux's USER_HZ of 100
		t.Errorf("nproxy used %d clock ticks of CPU in 2 s out of fds: it spins", used)
	}
	// The established relays go on, all at once, so that they need more
	// splice pipes than the pool holds, with no fd left to make one.
	var wg sync.WaitGroup
	for i, c := range kept {
		data, crng := randomBytes(rng, 256<<10), rand.New(rand.NewPCG(rng.Uint64(), 0))
		wg.Go(func() {
			if err := echoRoundTrip(c, data, crng); err != nil {
				t.Errorf("established relay %d out of fds: %v", i, err)
			}
		})
	}
	wg.Wait()

	for _, c := range flood {
		c.Close()
	}
	flood = flood[:0]
	// Clients that queued while fds were short are accepted now, and some
	// may still be dropped: wait until the queue is drained and the relays
	// are closed, leaving the listener and the kept pairs.
	mustEventually(t, 10*time.Second, "the flood to drain", func() bool {
		files, err := openFiles(p.pid())
		return err == nil && len(files.sockets) <= 1+2*len(kept) && totalQueued(in) == 0
	})
	for i := range 3 {
		c := dialClient(t, addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := echoRoundTrip(c, []byte("after the flood\n"), rng); err != nil {
			t.Fatalf("new client %d after the flood closed: %v", i, err)
		}
		c.Close()
	}
	// Once per burst, never per event: 2 s out of fds is about 20 pauses of
	// acceptBackoff, and each burst is two lines.
	waitStderr(t, p, "accept resumed on 127.0.0.1:"+strconv.Itoa(in)+" after ")
	paused := strings.Count(p.stderr.String(), "accept paused")
	resumed := strings.Count(p.stderr.String(), "accept resumed")
	if lines := strings.Count(p.stderr.String(), "\n"); paused < 1 || paused > resumed+1 || paused > 5 || lines > 10 {
		t.Errorf("%d 'accept paused' and %d 'accept resumed' lines (%d in all), want one of each per burst and a summary of the failed connects:\n%s", paused, resumed, lines, p.stderr.String())
	}
	if p.exited() {
		t.Fatalf("nproxy exited: %v", p.cmd.ProcessState)
	}
}

// totalQueued counts the clients waiting to be accepted on port.
func totalQueued(port int) int {
	n := 0
	for _, queued := range listenSockets(port) {
		n += queued
	}
	return n
}

// relayMany runs n echo connections through addr, workers at a time, each
// with a random amount of data up to maxSize.
func relayMany(t *testing.T, addr string, n, workers, maxSize int) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for i := range jobs {
				if err := relayOne(addr, randomBytes(rng, 1+rng.IntN(maxSize)), rng); err != nil {
					t.Errorf("connection %d: %v", i, err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

func relayOne(addr string, data []byte, rng *rand.Rand) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return echoRoundTrip(c, data, rng)
}

func TestLoops(t *testing.T) {
	t.Parallel()
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, echo, "--loops", "2")
	if n := listeners(p.pid(), in); n != 2 {
		t.Errorf("--loops 2 should give 2 SO_REUSEPORT listeners, found %d", n)
	}
	relayMany(t, addrOf("127.0.0.1", in), 300, 16, 64<<10)
}

// IPv6 on both sides, the address written bare and in brackets ("[::1]"
// once started and then failed every connection with "can't resolve").
func TestIPv6(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		nproxytest.Unavailable(t, "no IPv6 loopback on this machine: %v", err)
	}
	ln.Close()
	echo := socatEcho(t, "::1")
	for _, host := range []string{"::1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			in := unusedPort(t, "::1")
			startProxy(t, host, in, echo)
			relayMany(t, addrOf("::1", in), 10, 4, 128<<10)
		})
	}
}

// Once its connections are gone and its pipes have sat idle for a second
// (the loop's pipeIdle), nproxy holds the fds it started with.
func TestNoFdLeak(t *testing.T) {
	t.Parallel()
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, echo)
	base, err := openFiles(p.pid())
	if err != nil {
		t.Fatal(err)
	}

	relayMany(t, addrOf("127.0.0.1", in), 500, 10, 8<<10)

	var now fdCounts
	back := eventually(5*time.Second, func() bool {
		now, err = openFiles(p.pid())
		return err == nil && len(now.sockets) == len(base.sockets) && now.others == base.others &&
			now.pipes == base.pipes
	})
	if !back {
		t.Errorf("fd leak: 5 s after 500 connections closed, nproxy holds %d sockets (was %d), %d pipe ends (was %d), %d other fds (was %d)",
			len(now.sockets), len(base.sockets), now.pipes, base.pipes, now.others, base.others)
	}
	t.Logf("fds before: %d sockets, %d pipe ends, %d others; after: %d, %d, %d",
		len(base.sockets), base.pipes, base.others, len(now.sockets), now.pipes, now.others)
}

// TestDefaultHostAndNames runs the quick start as a user types it: the in
// connector's host defaults to localhost, and the out host is a name,
// resolved off the loop.
func TestDefaultHostAndNames(t *testing.T) {
	t.Parallel()
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startChild(t, nproxyBin, "--in", fmt.Sprintf("type=tcp,port=%d", in),
		"--out", fmt.Sprintf("type=tcp,host=localhost,port=%d", echo))
	waitListening(t, p, in)
	c := dialClient(t, addrOf("127.0.0.1", in))
	if err := echoRoundTrip(c, []byte("through localhost\n"), newRand(t)); err != nil {
		t.Fatal(err)
	}
}

// fullListener returns a listener that does not answer connects for now:
// its backlog is 0 and its accept queue already holds a client, so the
// kernel drops further SYNs until the test accepts.
func fullListener(t *testing.T) (*net.TCPListener, int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full listener")
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	fl, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	ln := fl.(*net.TCPListener)
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	for range 3 {
		c, err := net.DialTimeout("tcp", addrOf("127.0.0.1", port), 300*time.Millisecond)
		if err != nil {
			return ln, port // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("could not fill the accept queue of a listener with backlog 0")
	return nil, 0
}

// TestConnectTimeout checks the out connector's timeout parameter against a
// server that never answers, and that a signal ends a pending connect.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	_, hole := fullListener(t)
	in := unusedPort(t, "127.0.0.1")
	p := startChild(t, nproxyBin, "-v", "--in", tcpSpec("127.0.0.1", in),
		"--out", tcpSpec("127.0.0.1", hole)+",timeout=0.5")
	waitListening(t, p, in)

	c := dialClient(t, addrOf("127.0.0.1", in))
	begin := time.Now()
	nproxytest.ExpectEOF(t, c, 3*time.Second)
	if took := time.Since(begin); took < 400*time.Millisecond {
		t.Errorf("client closed after %v, before the 0.5 s timeout", took)
	}
	mustEventually(t, 2*time.Second, "the timeout to be logged", func() bool {
		return strings.Contains(p.stderr.String(), fmt.Sprintf("127.0.0.1:%d: connection timed out", hole))
	})

	pending := dialClient(t, addrOf("127.0.0.1", in))
	time.Sleep(100 * time.Millisecond) // the connect is now pending
	p.signal(t, syscall.SIGTERM)
	nproxytest.ExpectEOF(t, pending, 2*time.Second)
	if code := p.exitCode(t, 2*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestSlowConnect sends a line and a half-close before the server accepts
// the proxy's connect: both must reach the server once it does, and its
// answer must reach the client.
func TestSlowConnect(t *testing.T) {
	t.Parallel()
	ln, port := fullListener(t)
	in := unusedPort(t, "127.0.0.1")
	startProxy(t, "127.0.0.1", in, port)
	client := dialClient(t, addrOf("127.0.0.1", in))
	if _, err := client.Write([]byte("early line\n")); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()

	time.Sleep(300 * time.Millisecond) // the proxy's SYN is dropped
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	filler, err := ln.Accept() // frees the queue for the SYN's retry
	if err != nil {
		t.Fatal(err)
	}
	filler.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatalf("the proxy's connect did not arrive once the queue had room: %v", err)
	}
	defer server.Close()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(server); err != nil || string(got) != "early line\n" {
		t.Fatalf("server read %q, %v; want the early line then EOF", got, err)
	}
	server.Write([]byte("late answer\n"))
	server.Close()
	if got, err := io.ReadAll(client); err != nil || string(got) != "late answer\n" {
		t.Fatalf("client read %q, %v; want the answer then EOF", got, err)
	}
}

// --no-splice and --pipe-size (and their YAML keys) reach the relay:
// traced, a default run splices through pipes it sizes to 1 MiB, a pipe
// size sizes them as asked, and no-splice never splices; the bytes come back
// exact every time.
func TestSpliceOptions(t *testing.T) {
	t.Parallel()
	path := strace()
	if path == "" {
		nproxytest.Unavailable(t, "strace is not installed or cannot trace here")
	}
	echo := socatEcho(t, "127.0.0.1")
	rng := newRand(t)
	flags := func(extra ...string) func(in int) []string {
		return func(in int) []string {
			return append(extra, "--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", echo))
		}
	}
	yamlFile := func(in int) []string {
		conf := filepath.Join(t.TempDir(), "nproxy.yaml")
		text := fmt.Sprintf("no_splice: true\npipe_size: 65536\nproxies:\n  - in: {%s}\n    out: {%s}\n",
			strings.ReplaceAll(tcpSpec("127.0.0.1", in), "=", ": "), strings.ReplaceAll(tcpSpec("127.0.0.1", echo), "=", ": "))
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{"-c", conf}
	}
	for _, tc := range []struct {
		name     string
		args     func(in int) []string
		splices  bool
		pipeSize string
	}{
		{"default", flags(), true, "1048576"},
		{"--pipe-size", flags("--pipe-size", "65536"), true, "65536"},
		{"--no-splice", flags("--no-splice"), false, ""},
		{"yaml no_splice", yamlFile, false, ""},
	} {
		in := unusedPort(t, "127.0.0.1")
		trace := filepath.Join(t.TempDir(), "strace")
		args := append([]string{"-f", "-qq", "-e", "trace=splice,fcntl", "-e", "signal=none", "-o", trace, nproxyBin}, tc.args(in)...)
		p := startChild(t, path, args...)
		// The listener is nproxy's, a child of strace: wait by dialling.
		var c net.Conn
		mustEventually(t, 10*time.Second, "nproxy under strace to listen", func() bool {
			var err error
			c, err = net.DialTimeout("tcp", addrOf("127.0.0.1", in), time.Second)
			return err == nil
		})
		if err := echoRoundTrip(c, randomBytes(rng, 1<<20), rng); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c.Close()
		syscall.Kill(-p.pid(), syscall.SIGTERM) // nproxy is in strace's process group
		p.exitCode(t, 10*time.Second)
		data, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		got := string(data)
		if spliced := strings.Contains(got, "splice("); spliced != tc.splices {
			t.Errorf("%s: splice(2) called: %v, want %v", tc.name, spliced, tc.splices)
		}
		if tc.pipeSize != "" && !strings.Contains(got, "F_SETPIPE_SZ, "+tc.pipeSize) {
			t.Errorf("%s: no F_SETPIPE_SZ, %s in the trace", tc.name, tc.pipeSize)
		}
	}
}
