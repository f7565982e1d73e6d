package unix

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
	sys "golang.org/x/sys/unix"
)

// socat UNIX-CONNECT → unix in → tcp out → echo, and tcp in → unix out →
// socat UNIX-LISTEN (cat): byte-exact both ways with half-close (each
// client's EOF reaches the echo, whose EOF comes back), spliced.
func TestSocatBothDirections(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	echo := goEcho(t, "tcp", "127.0.0.1:0").(*net.TCPAddr)
	in := sockPath(t, "in.sock")
	server := sockPath(t, "server.sock")
	socatEchoUnix(t, server)
	port := nproxytest.FreePort(t)
	start(t, 0, []string{in},
		nproxy.New(&In{Path: in}, &tcp.Out{Host: "127.0.0.1", Port: echo.Port}),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &Out{Path: server}))
	for _, addr := range []string{"UNIX-CONNECT:" + in, fmt.Sprintf("TCP:127.0.0.1:%d", port)} {
		data := randomBytes(4 << 20)
		spliced := nproxy.SplicedBytes()
		if got := socatClient(t, addr, data); !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes back of %d", addr, len(got), len(data))
		}
		if n := nproxy.SplicedBytes() - spliced; n < 2*uint64(len(data)-len(data)/8) { // the reads before a stream shows are copied
			t.Errorf("%s: %d bytes spliced, want %d", addr, n, 2*len(data))
		}
	}
}

// A PROXY header on a unix in (haproxy's send-proxy to a unix socket): the
// server gets the bytes after it, and the client is named by the address it
// carries.
func TestProxyProtocolIn(t *testing.T) {
	logs := nproxytest.CaptureLog(t, 1)
	ln := nproxytest.Listener(t)
	in := sockPath(t, "in.sock")
	start(t, 1, []string{in}, nproxy.New(&In{Path: in, Accept: proxyproto.Accept{ProxyProtocol: "v1"}},
		&tcp.Out{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}))
	c, err := net.Dial("unix", in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\r\nhello"))
	c.(*net.UnixConn).CloseWrite()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(s); err != nil || string(got) != "hello" {
		t.Fatalf("server got %q, %v; want the bytes after the header", got, err)
	}
	s.Close()
	logs.WaitFor(t, "client=192.0.2.7:5555")
}

// unix in → unix out, both in the abstract namespace on nproxy's side of
// the server: spliced too.
func TestUnixToUnixAbstract(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	in := fmt.Sprintf("@nproxy-test-in-%d", os.Getpid())
	server := sockPath(t, "server.sock")
	socatEchoUnix(t, server)
	start(t, 0, []string{in}, nproxy.New(&In{Path: in}, &Out{Path: server}))
	data := randomBytes(4 << 20)
	spliced := nproxy.SplicedBytes()
	if got := socatClient(t, "ABSTRACT-CONNECT:"+in[1:], data); !bytes.Equal(got, data) {
		t.Fatalf("%d bytes back of %d", len(got), len(data))
	}
	if n := nproxy.SplicedBytes() - spliced; n < 2*uint64(len(data)-len(data)/8) { // the reads before a stream shows are copied
		t.Errorf("%d bytes spliced, want %d", n, 2*len(data))
	}
}

// 200 clients at once on a unix in, each echoed byte-exact.
func TestConcurrentClients(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	echo := goEcho(t, "tcp", "127.0.0.1:0").(*net.TCPAddr)
	in := sockPath(t, "in.sock")
	p := nproxy.New(&In{Path: in}, &tcp.Out{Host: "127.0.0.1", Port: echo.Port})
	start(t, 0, []string{in}, p)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", in)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			data := randomBytes(16<<10 + i)
			go func() { c.Write(data); c.(*net.UnixConn).CloseWrite() }()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				errs <- fmt.Errorf("client %d: %d bytes of %d, %v", i, len(got), len(data), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Closed() != 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Opened() != 200 || p.Closed() != 200 {
		t.Errorf("opened %d, closed %d, want 200", p.Opened(), p.Closed())
	}
}

// seqpacket keeps each message whole on the unix side.
func TestSeqpacket(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	echo := goEcho(t, "tcp", "127.0.0.1:0").(*net.TCPAddr)
	in := sockPath(t, "in.sock")
	start(t, 0, []string{in}, nproxy.New(&In{Path: in, Socket: "seqpacket"}, &tcp.Out{Host: "127.0.0.1", Port: echo.Port}))
	c, err := net.Dial("unixpacket", in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"one", "two two", "three three three"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("sent %q, got %q (%v)", msg, buf[:n], err)
		}
	}
}

// tcp in → unix seqpacket out: each chunk is one message to the server.
func TestSeqpacketOut(t *testing.T) {
	logs := nproxytest.CaptureLog(t, 1)
	server := sockPath(t, "server.sock")
	ln, err := net.Listen("unixpacket", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 100)
		n, _ := c.Read(buf)
		fmt.Fprintf(c, "got %q", buf[:n])
	}()
	port := nproxytest.FreePort(t)
	nproxytest.Start(t, 1, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &Out{Path: server, Socket: "seqpacket"}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("a message"))
	got, err := io.ReadAll(c)
	if string(got) != `got "a message"` {
		t.Fatalf("got %q (%v)\n%s", got, err, logs)
	}
}

// With several loops, the first one listens on the unix socket (they
// cannot all bind it) and serves every client.
func TestSeveralLoops(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	nproxy.SetOptions(nproxy.Options{Loops: 2})
	defer nproxy.SetOptions(nproxy.Options{})
	echo := goEcho(t, "tcp", "127.0.0.1:0").(*net.TCPAddr)
	in := sockPath(t, "in.sock")
	start(t, 0, []string{in}, nproxy.New(&In{Path: in}, &tcp.Out{Host: "127.0.0.1", Port: echo.Port}))
	if got := socatClient(t, "UNIX-CONNECT:"+in, []byte("two loops")); string(got) != "two loops" {
		t.Fatalf("got %q", got)
	}
}

// The file gets Mode, and is removed on a clean stop; a stale socket is
// removed at start.
func TestModeStaleAndRemoval(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	in := sockPath(t, "in.sock")
	stale, err := net.Listen("unix", in)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // the file stays, nothing listens: stale
	r := start(t, 0, []string{in}, nproxy.New(&In{Path: in, Mode: "0604", Group: "daemon", Unlink: true}, &Out{Path: "/nonexistent"}))
	var st sys.Stat_t
	if err := sys.Stat(in, &st); err != nil || st.Mode&0o7777 != 0o604 {
		t.Fatalf("socket file mode %o (%v), want 604", st.Mode&0o7777, err)
	}
	if g, err := user.LookupGroup("daemon"); err == nil && fmt.Sprint(st.Gid) != g.Gid {
		t.Errorf("socket file group %d, want daemon (%s)", st.Gid, g.Gid)
	}
	nproxy.Stop()
	r.wait(t)
	if _, err := os.Lstat(in); !os.IsNotExist(err) {
		t.Fatalf("the socket file is still there after a clean stop: %v", err)
	}
}

// A socket file that another server took over while nproxy ran is that
// server's: nproxy's stop leaves it.
func TestReplacedSocketIsKept(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	in := sockPath(t, "in.sock")
	r := start(t, 0, []string{in}, nproxy.New(&In{Path: in}, &Out{Path: "/nonexistent"}))
	os.Remove(in)
	other, err := net.Listen("unix", in)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	nproxy.Stop()
	r.wait(t)
	if _, err := os.Lstat(in); err != nil {
		t.Fatalf("nproxy removed another server's socket: %v", err)
	}
}

// Bad paths and files in the way: one clear error each, and no file
// removed but a stale socket.
func TestListenErrors(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	dir := t.TempDir()
	regular := dir + "/regular"
	os.WriteFile(regular, []byte("keep me"), 0o600)
	live := dir + "/live.sock"
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stale := dir + "/stale.sock"
	sl, _ := net.Listen("unix", stale)
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	abstract := fmt.Sprintf("@nproxy-test-taken-%d", os.Getpid())
	al, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	for _, tc := range []struct {
		in   *In
		want string
	}{
		{&In{Path: "/" + strings.Repeat("x", 120)}, "longer than a unix socket address takes"},
		{&In{Path: dir + "/missing/dir/s.sock"}, "no such file or directory"},
		{&In{Path: regular, Unlink: true}, "exists and is not a socket: not removing it"},
		{&In{Path: live, Unlink: true}, "a server is listening on it: not removing it"},
		{&In{Path: stale}, "a stale socket file is in the way (unlink=1 removes it)"},
		{&In{Path: "@x", Mode: "0600"}, "abstract name"},
		{&In{Path: abstract}, "address already in use (another server has it)"},
		{&In{Path: dir + "/s", Mode: "0999"}, "mode must be octal"},
		{&In{Path: dir + "/s", Socket: "dgram"}, "stream or seqpacket"},
	} {
		p := nproxy.New(tc.in, &Out{Path: "/x"})
		p.Register()
		err := nproxy.Mainloop(0)
		p.Unregister()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.in.Path, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep me" {
		t.Error("the regular file was changed")
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("the live server's socket was removed: %v", err)
	}
	if _, err := os.Lstat(stale); err != nil {
		t.Errorf("the stale socket was removed with unlink=0: %v", err)
	}
}

// Build checks the parameters of both sides, as the command does.
func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		side   connectors.Side
		params map[string]any
		want   string
	}{
		{connectors.SideIn, map[string]any{"type": "unix"}, "path parameter is required"},
		{connectors.SideOut, map[string]any{"type": "unix", "path": strings.Repeat("y", 200)}, "longer than"},
		{connectors.SideOut, map[string]any{"type": "unix", "path": "/x", "socket": "raw"}, "stream or seqpacket"},
		{connectors.SideIn, map[string]any{"type": "unix", "path": "/x", "mode": "0660", "unlink": "0"}, ""},
	} {
		c, err := connectors.Build(tc.side, string(tc.side), tc.params)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.params, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.params, err, tc.want)
		case tc.want == "":
			if in := c.(*In); in.Unlink || in.Mode != "0660" {
				t.Errorf("%v: built %+v", tc.params, in)
			}
		}
	}
	c, _ := connectors.Build(connectors.SideIn, "in", map[string]any{"type": "unix", "path": "/x"})
	if !c.(*In).Unlink {
		t.Error("unlink is not on by default")
	}
}

// The process holds the same fds before and after 1,000 connections
// through a unix in (once the idle pipes are released: the count is taken
// before the first connection, when the pool has none).
func TestNoFdLeak(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	echo := goEcho(t, "tcp", "127.0.0.1:0").(*net.TCPAddr)
	in := sockPath(t, "in.sock")
	p := nproxy.New(&In{Path: in}, &tcp.Out{Host: "127.0.0.1", Port: echo.Port})
	start(t, 0, []string{in}, p)
	roundTrip := func(msg []byte) error {
		c, err := net.Dial("unix", in)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(msg)
		c.(*net.UnixConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err == nil && !bytes.Equal(got, msg) {
			err = fmt.Errorf("got %q, want %q", got, msg)
		}
		return err
	}
	fds := nproxytest.OpenFDs(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 125 {
				if err := roundTrip(fmt.Appendf(nil, "worker %d message %d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitUntil(t, "1,000 connections to close", func() bool { return p.Closed() == 1000 })
	for deadline := time.Now().Add(10 * time.Second); nproxytest.OpenFDs(t) != fds; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds after 1,000 connections, %d before: %v", nproxytest.OpenFDs(t), fds, fdKinds())
		}
	}
}

// fdKinds counts the process's fds by what they are (socket, pipe, file).
func fdKinds() map[string]int {
	kinds := map[string]int{}
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		kind := strings.SplitN(l, ":", 2)[0]
		if kind == "pipe" { // splice's pipes are larger than the default 64 KiB
			fd, _ := strconv.Atoi(e.Name())
			size, _ := sys.FcntlInt(uintptr(fd), sys.F_GETPIPE_SZ, 0)
			kind = fmt.Sprintf("pipe of %d KiB", size>>10)
		}
		kinds[kind]++
	}
	return kinds
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
