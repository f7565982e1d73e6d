package proxyproto_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// haproxy runs haproxy in the foreground (-db) with cfg, which may use
// {{LOG}} for its global log line, and returns its output (where its
// "log stdout" lines go) once port listens.
func haproxy(t *testing.T, port int, cfg string) *nproxytest.LogBuffer {
	t.Helper()
	bin := nproxytest.Command(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	global := "global\n\tlog stdout format raw local0\n\nmaxconn 100\n" +
		"defaults\n\tmode tcp\n\tlog global\n\ttimeout connect 5s\n\ttimeout client 10s\n\ttimeout server 10s\n\n"
	if err := os.WriteFile(path, []byte(global+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := nproxytest.StartPeer(t, bin, "-db", "-f", path)
	nproxytest.WaitListening(t, port)
	return out
}

// headerBackend accepts connections, reads a PROXY v1 line from each and
// writes it back followed by an echo of the rest: a backend that prints
// the address it was given.
func headerBackend(t *testing.T) int {
	t.Helper()
	return nproxytest.ServeTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		c.Write([]byte(line))
		io.Copy(c, r)
	})
}

// dialFrom connects to 127.0.0.1:port from the given loopback address, so
// that the client address is easy to tell from nproxy's and haproxy's own.
func dialFrom(t *testing.T, src string, port int) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// readLine reads one line from r.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// wantLines reads lines from r (headerBackend's: the header it was given,
// then the echo) and fails at the first that is not the next of want.
func wantLines(t *testing.T, r *bufio.Reader, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := readLine(t, r); got != w {
			t.Fatalf("line %d: %q, want %q", i+1, got, w)
		}
	}
}
