package unix

import (
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/nproxytest"
)

// listeningUnix reports whether a unix socket listens at path (or @name),
// from /proc/net/unix, without connecting: a connection would count.
func listeningUnix(path string) bool {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; flag 00010000 is
		// __SO_ACCEPTCON, a listening socket.
		if len(f) == 8 && f[7] == path && f[3] == "00010000" {
			return true
		}
	}
	return false
}

// run is Mainloop in the background of a test, like nproxytest.Start for
// in connectors that are not TCP ports.
type run struct {
	done chan struct{}
	err  error
}

// start registers proxies, runs Mainloop(max) and returns once a socket
// listens at each of paths. When the test ends, Mainloop is stopped.
func start(t *testing.T, max int, paths []string, proxies ...*nproxy.Proxy) *run {
	t.Helper()
	for _, p := range proxies {
		p.Register()
	}
	r := &run{done: make(chan struct{})}
	go func() { r.err = nproxy.Mainloop(max); close(r.done) }()
	t.Cleanup(func() {
		nproxy.Stop()
		r.wait(t)
		for _, p := range proxies {
			p.Unregister()
		}
	})
	for _, path := range paths {
		for deadline := time.Now().Add(3 * time.Second); !listeningUnix(path); time.Sleep(5 * time.Millisecond) {
			select {
			case <-r.done:
				t.Fatalf("Mainloop returned before %s listened: %v", path, r.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s", path)
			}
		}
	}
	return r
}

func (r *run) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Error("Mainloop did not return")
	}
}

// socatEchoUnix runs socat listening on a unix socket at path, each client
// relayed to a cat of its own: an echo that half-closes after the client's
// EOF. It returns once socat listens.
func socatEchoUnix(t *testing.T, path string) {
	t.Helper()
	socat := nproxytest.Command(t, "socat")
	cmd := exec.Command(socat, "UNIX-LISTEN:"+path+",fork", "EXEC:cat")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); !listeningUnix(path); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("socat does not listen on %s", path)
		}
	}
}

// socatClient sends data through socat UNIX-CONNECT (or TCP) to addr, half-
// closes, and returns all that came back before the other side's EOF.
func socatClient(t *testing.T, addr string, data []byte) []byte {
	t.Helper()
	socat := nproxytest.Command(t, "socat")
	out, stderr, err := nproxytest.RunFor(exec.Command(socat, "-t", "30", "-T", "30", "STDIO", addr), data, 30*time.Second)
	if err != nil {
		t.Fatalf("socat to %s: %v: %s", addr, err, stderr)
	}
	return out
}

// goEcho serves an echo that half-closes after the client's EOF, on
// network ("tcp" on 127.0.0.1, or "unix" at addr), until the test ends;
// it returns the listener's address.
func goEcho(t *testing.T, network, addr string) net.Addr {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	nproxytest.ServeOn(t, ln, nproxytest.Echo)
	return ln.Addr()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sockPath is a socket path in a fresh temporary directory.
func sockPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
