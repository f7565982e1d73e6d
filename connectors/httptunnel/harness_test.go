package httptunnel

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// mb is the size of the bulk exchanges: 10 MiB each way.
const mb = 1 << 20

// peer starts a program that runs until the test ends, its output in the
// test's log on failure.
func peer(t *testing.T, name string, args ...string) {
	t.Helper()
	nproxytest.StartPeer(t, nproxytest.Command(t, name), args...)
}

// echo starts socat as an echo server that honours half-close (cat ends
// on EOF, then socat closes) and returns its port.
func echo(t *testing.T) int {
	port := nproxytest.FreePort(t)
	peer(t, "socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=512", port), "EXEC:cat")
	nproxytest.WaitListening(t, port)
	return port
}

// gnuHTS starts GNU hts on a free port, forwarding to 127.0.0.1:to.
func gnuHTS(t *testing.T, to int, args ...string) int {
	port := nproxytest.FreePort(t)
	args = append([]string{"-w", "-F", "127.0.0.1:" + strconv.Itoa(to)}, args...)
	peer(t, "hts", append(args, "127.0.0.1:"+strconv.Itoa(port))...)
	nproxytest.WaitListening(t, port)
	return port
}

// gnuHTC starts GNU htc on a free local port, tunnelling to 127.0.0.1:to.
func gnuHTC(t *testing.T, to int, args ...string) int {
	port := nproxytest.FreePort(t)
	args = append([]string{"-w", "-F", strconv.Itoa(port)}, args...)
	peer(t, "htc", append(args, "127.0.0.1:"+strconv.Itoa(to))...)
	nproxytest.WaitListening(t, port)
	return port
}

// tinyproxy starts tinyproxy on a free port as a plain HTTP proxy (no
// CONNECT needed: httptunnel sends ordinary requests).
func tinyproxy(t *testing.T) int {
	port := nproxytest.FreePort(t)
	conf := filepath.Join(t.TempDir(), "tinyproxy.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"Port %d\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 200\nLogLevel Error\n", port)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	peer(t, "tinyproxy", "-d", "-c", conf)
	nproxytest.WaitListening(t, port)
	return port
}

// relay starts nproxy with one proxy from tcp port to out and returns the
// port, or with in as given.
func start(t *testing.T, proxies ...*nproxy.Proxy) *nproxytest.LogBuffer {
	logs := nproxytest.CaptureLog(t, 1)
	nproxytest.Start(t, 0, proxies...)
	return logs
}

// entry is a tcp in on a free port of 127.0.0.1.
func entry(t *testing.T) *tcp.In {
	return &tcp.In{Host: "127.0.0.1", Port: nproxytest.FreePort(t)}
}

// exchange sends size random bytes to port while reading them back, checks
// they came back intact, then half-closes and expects EOF.
func exchange(t *testing.T, port, size int) {
	t.Helper()
	c, want, werr := sending(t, port, size, 40*time.Second)
	got := make([]byte, size)
	if n, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("byte %d of %d differs", nproxytest.FirstDiff(got, want), size)
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
		t.Fatalf("after half-close: %d more bytes, %v", len(rest), err)
	}
}

// sending dials port and writes size random bytes to it from a goroutine,
// which reports the write's error; the connection has a deadline d and is
// closed when the test ends.
func sending(t *testing.T, port, size int, d time.Duration) (net.Conn, []byte, <-chan error) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(d))
	want := make([]byte, size)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	return c, want, werr
}

// haproxy runs haproxy in the foreground with cfg (after TCP defaults)
// until the test ends, once port listens.
func haproxy(t *testing.T, port int, cfg string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	defaults := "defaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 30s\n\ttimeout server 30s\n\n"
	if err := os.WriteFile(path, []byte(defaults+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	peer(t, "haproxy", "-db", "-f", path)
	nproxytest.WaitListening(t, port)
}

// headerEcho is a server that reads a PROXY v1 line, writes it back, then
// echoes the rest: it shows the client address it was given.
func headerEcho(t *testing.T) int {
	return nproxytest.ServeTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		if line, err := r.ReadString('\n'); err == nil {
			c.Write([]byte(line))
			io.Copy(c, r)
		}
	})
}
