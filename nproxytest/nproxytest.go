// Package nproxytest holds test helpers for programs and connectors built
// on nproxy: it runs nproxy.Mainloop in the background of a test, captures
// nproxy's log, and finds free ports on 127.0.0.1.
//
//	func TestRelay(t *testing.T) {
//		logs := nproxytest.CaptureLog(t, 1) // notices and errors
//		port := nproxytest.FreePort(t)
//		p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: backend})
//		run := nproxytest.Start(t, 1, p) // returns once port listens
//		// ... one connection to port ...
//		run.Wait(t, 5*time.Second) // Mainloop(1) returns after it
//		logs.WaitFor(t, "some log line")
//	}
//
// It also holds what tests across the packages share: servers (EchoServer,
// ServeTCP, UDPServer), clients and their checks (Dial,
// ExpectEOF, ExpectEnd, ExpectClosed, DialClosed, EchoThrough), peer
// programs (Command, StartPeer, RunFor), network namespaces (NewNetns) and
// loops of a test's own (RunLoop).
//
// Everything it starts stops when the test ends.
package nproxytest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
)

// LogBuffer collects log lines for a test; it is safe for concurrent use,
// since the loop writes while the test reads.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits up to 5 s until the buffer contains every one of want and
// returns its content; it fails t if it does not.
func (b *LogBuffer) WaitFor(t testing.TB, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.String()
		if containsAll(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q:\n%s", want, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// CaptureLog sends nproxy's log, at verbosity v (0 errors ... 3 debug), to
// a new LogBuffer until the test ends; then the log goes back to standard
// error at verbosity 0, and a failed test shows what was captured. Call it
// before Start, so that Mainloop has stopped when the log is restored.
func CaptureLog(t testing.TB, v int) *LogBuffer {
	logs := &LogBuffer{}
	nproxy.SetLogOutput(logs)
	nproxy.SetVerbosity(v)
	t.Cleanup(func() {
		nproxy.SetLogOutput(os.Stderr)
		nproxy.SetVerbosity(0)
		if t.Failed() {
			t.Logf("nproxy's log:\n%s", logs)
		}
	})
	return logs
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn returns a TCP port of ip that was free a moment ago. It is
// picked at random below the kernel's ephemeral range: a port from that
// range (what listening on port 0 gives) can be handed to any outgoing
// connection of the machine, those of other test processes included, before
// the test binds it again.
func FreePortOn(t testing.TB, ip string) int {
	t.Helper()
	port, err := PickPort(ip)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// PickPort is FreePortOn for code without a testing.TB, such as Example
// functions.
func PickPort(ip string) (int, error) {
	low := ephemeralLow()
	for range 100 {
		port := firstPort + rand.IntN(low-firstPort)
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s below %d after 100 tries", ip, low)
}

// firstPort is the lowest port FreePortOn picks: below it are well-known
// and registered services a machine may run.
const firstPort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range, 32768 if
// it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= firstPort+1000 {
		return 32768
	}
	return low
}

// Listening reports whether a socket listens on 127.0.0.1:port. It does
// not connect, since a connection would count as a proxied one. A port
// held by a socket without SO_REUSEADDR (a client's, say) counts as
// listening too, so it suits ports from FreePort that only nproxy binds.
func Listening(port int) bool {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	// With SO_REUSEADDR on both sides (nproxy's listeners set it), bind
	// fails only against a socket in the LISTEN state, not against one that
	// is merely bound, so the probe cannot make nproxy's own bind fail.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	return errors.Is(err, syscall.EADDRINUSE)
}

// Run is nproxy.Mainloop running in the background of a test.
type Run struct {
	proxies []*nproxy.Proxy
	done    chan struct{}
	err     error
}

// Start registers proxies, runs nproxy.Mainloop(max) in the background and
// returns once the in connector of each proxy listens on 127.0.0.1 at its
// Port field (Net::Proxy's port parameter, which every listening connector
// has). It fails t if Mainloop returns or a port does not listen within
// 3 s. When the test ends, Start stops Mainloop and unregisters proxies.
func Start(t testing.TB, max int, proxies ...*nproxy.Proxy) *Run {
	t.Helper()
	return StartServer(t, nproxy.DefaultServer, max, proxies...)
}

// StartServer is Start for srv rather than nproxy.DefaultServer, so that
// tests with Servers of their own can run in parallel.
func StartServer(t testing.TB, srv *nproxy.Server, max int, proxies ...*nproxy.Proxy) *Run {
	t.Helper()
	ports := make([]int, len(proxies))
	for i, p := range proxies {
		ports[i] = inPort(t, p)
	}
	for _, p := range proxies {
		srv.Register(p)
	}
	r := &Run{proxies: proxies, done: make(chan struct{})}
	go func() { r.err = srv.Mainloop(max); close(r.done) }()
	t.Cleanup(func() {
		srv.Stop()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Mainloop did not return after Stop")
		}
		for _, p := range proxies {
			srv.Unregister(p)
		}
	})
	for _, port := range ports {
		r.waitListening(t, port)
	}
	return r
}

// inPort reads the Port field of p's in connector.
func inPort(t testing.TB, p *nproxy.Proxy) int {
	t.Helper()
	v := reflect.Indirect(reflect.ValueOf(p.In()))
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Port"); f.IsValid() && f.CanInt() {
			return int(f.Int())
		}
	}
	t.Fatalf("nproxytest: in connector %T has no int field Port", p.In())
	return 0
}

func (r *Run) waitListening(t testing.TB, port int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !Listening(port); time.Sleep(5 * time.Millisecond) {
		select {
		case <-r.done:
			t.Fatalf("Mainloop returned before port %d listened: %v", port, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d", port)
		}
	}
}

// Wait waits up to d for Mainloop to return on its own, as Mainloop(max)
// does after max connections, and fails t if it does not or if it returns
// an error.
func (r *Run) Wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Mainloop: %v", r.err)
		}
	case <-time.After(d):
		var counts []string
		for _, p := range r.proxies {
			counts = append(counts, fmt.Sprintf("opened %d, closed %d", p.Opened(), p.Closed()))
		}
		t.Fatalf("Mainloop did not return within %v (%s)", d, strings.Join(counts, "; "))
	}
}

// Listener returns a TCP listener on a free port of 127.0.0.1, closed when
// the test ends.
func Listener(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Unavailable ends a test that cannot run here for want of a peer program,
// a privilege or a kernel feature. Outside CI it skips; under CI (CI=true)
// it fails, so that a partly provisioned CI cannot stay green by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("under CI every peer must be present: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Command returns the path of the program name, ending the test with
// Unavailable when it is not installed.
func Command(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (make deps installs every peer)", name)
	}
	return path
}
