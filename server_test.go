package nproxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// newServer makes a Server logging at verbosity v to a buffer of its own.
func newServer(t *testing.T, v int) (*nproxy.Server, *nproxytest.LogBuffer) {
	logs := &nproxytest.LogBuffer{}
	srv := &nproxy.Server{}
	srv.SetLogOutput(logs)
	srv.SetVerbosity(v)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return srv, logs
}

// echoOnce sends line through port and checks the echo.
func echoOnce(t *testing.T, port int, line string) {
	t.Helper()
	c := nproxytest.Dial(t, port)
	io.WriteString(c, line+"\n")
	if got := readLine(t, c, bufio.NewReader(c)); got != line+"\n" {
		t.Fatalf("echo: got %q", got)
	}
	c.Close()
}

// Two Servers in one process, each with its own verbosity, log and counts,
// relay at the same time.
func TestServersInParallel(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	for _, tc := range []struct {
		name      string
		verbosity int
		conns     int
	}{{"quiet", 0, 2}, {"notice", 1, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, logs := newServer(t, tc.verbosity)
			p, port := tcpProxy(t, echo)
			nproxytest.StartServer(t, srv, tc.conns, p)
			for i := 0; i < tc.conns; i++ {
				echoOnce(t, port, tc.name+strconv.Itoa(i))
			}
			waitFor(t, func() bool { return srv.TotalClosed() == int64(tc.conns) })
			if srv.TotalOpened() != int64(tc.conns) || p.Opened() != int64(tc.conns) {
				t.Errorf("opened: server %d, proxy %d, want %d", srv.TotalOpened(), p.Opened(), tc.conns)
			}
			accepted := strings.Count(logs.String(), " Accepted 127.0.0.1:")
			if tc.verbosity == 0 && accepted != 0 || tc.verbosity == 1 && accepted != tc.conns {
				t.Errorf("verbosity %d: %d Accepted lines for %d connections", tc.verbosity, accepted, tc.conns)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

// Net::Proxy's level 1 lines, in its words.
func TestNoticeLines(t *testing.T) {
	t.Parallel()
	srv, logs := newServer(t, 1)
	echo := echoServer(t)
	p, port := tcpProxy(t, echo)
	nproxytest.StartServer(t, srv, 0, p)
	echoOnce(t, port, "hi")
	l := "127.0.0.1:" + strconv.Itoa(port)
	logs.WaitFor(t, "Add listener "+l, "New connection on listener "+l, " -> "+l,
		"Connected 127.0.0.1:", " -> 127.0.0.1:"+strconv.Itoa(echo), "Peered 127.0.0.1:", "Closing 127.0.0.1:", " access ")
	srv.Stop()
	logs.WaitFor(t, "Closing listener "+l)
}

var accessLine = regexp.MustCompile(`access proxy=#1 client=(\S+) target=(\S+) in=(\d+) out=(\d+) duration=(\S+) end=(.+)`)

// access waits for the n-th access line and returns its fields.
func access(t *testing.T, logs *nproxytest.LogBuffer, n int) (client, target string, in, out int, end string) {
	t.Helper()
	var m [][]string
	waitFor(t, func() bool { m = accessLine.FindAllStringSubmatch(logs.String(), -1); return len(m) >= n })
	f := m[n-1]
	in, _ = strconv.Atoi(f[3])
	out, _ = strconv.Atoi(f[4])
	if _, err := time.ParseDuration(f[5]); err != nil {
		t.Errorf("duration %q: %v", f[5], err)
	}
	return f[1], f[2], in, out, f[6]
}

// serveEcho runs a Server at notice with a proxy to an echo server, and
// returns the Server, its log and the proxy's port.
func serveEcho(t *testing.T) (*nproxy.Server, *nproxytest.LogBuffer, int) {
	srv, logs := newServer(t, 1)
	p, port := tcpProxy(t, echoServer(t))
	nproxytest.StartServer(t, srv, 0, p)
	return srv, logs, port
}

// serveBackend runs a Server whose access lines go where says (see
// accessServer) with a proxy to a new backend, and returns those lines,
// the backend and the proxy's port.
func serveBackend(t *testing.T, where string) (*nproxytest.LogBuffer, *backend, int) {
	srv, logs := accessServer(t, where)
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	nproxytest.StartServer(t, srv, 0, p)
	return logs, b, port
}

// accessDestinations are where the access line goes: the main log at
// notice, or the access log at verbosity 0.
var accessDestinations = []string{"log", "access log"}

// accessServer makes a Server that writes its access lines where says,
// and returns the buffer they go to. An access log must hold, once the
// Server stopped, exactly one line: the tests make one connection each.
func accessServer(t *testing.T, where string) (*nproxy.Server, *nproxytest.LogBuffer) {
	if where == "log" {
		return newServer(t, 1)
	}
	srv, logs := newServer(t, 0)
	accessLog := &nproxytest.LogBuffer{}
	srv.SetAccessLog(accessLog)
	t.Cleanup(func() { // after StartServer's, which stops the Server
		if n := strings.Count(accessLog.String(), "\n"); n != 1 {
			t.Errorf("%d lines in the access log, want 1:\n%s", n, accessLog)
		}
		if strings.Contains(logs.String(), "access") {
			t.Errorf("access line in the main log at verbosity 0:\n%s", logs)
		}
	})
	return srv, accessLog
}

func TestAccessLineCleanClose(t *testing.T) {
	t.Parallel()
	forEachAccessDestination(t, testAccessLineCleanClose)
}

// forEachAccessDestination runs test, in parallel, for each of
// accessDestinations.
func forEachAccessDestination(t *testing.T, test func(t *testing.T, where string)) {
	for _, where := range accessDestinations {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			test(t, where)
		})
	}
}

func testAccessLineCleanClose(t *testing.T, where string) {
	logs, b, port := serveBackend(t, where)
	c := nproxytest.Dial(t, port)
	io.WriteString(c, "hello")
	c.CloseWrite()
	s := b.accept(t)
	got, _ := io.ReadAll(s)
	io.WriteString(s, "world!!")
	s.Close()
	io.ReadAll(c)
	client, target, in, out, end := access(t, logs, 1)
	if string(got) != "hello" || client != c.LocalAddr().String() || target != "127.0.0.1:"+strconv.Itoa(b.port) ||
		in != 5 || out != 7 || end != "eof" {
		t.Errorf("access line: client %s target %s in %d out %d end %q", client, target, in, out, end)
	}
}

func TestAccessLineResets(t *testing.T) {
	t.Parallel()
	forEachAccessDestination(t, testAccessLineResets)
}

func testAccessLineResets(t *testing.T, where string) {
	for _, side := range []string{"client", "server"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			logs, b, port := serveBackend(t, where)
			c := nproxytest.Dial(t, port)
			io.WriteString(c, "abc\n")
			s := b.accept(t)
			readLine(t, s, bufio.NewReader(s))
			victim := c
			if side == "server" {
				victim = s
			}
			victim.SetLinger(0)
			victim.Close()
			_, _, in, _, end := access(t, logs, 1)
			if in != 4 || end != side+" reset" {
				t.Errorf("in %d end %q, want 4 and %q", in, end, side+" reset")
			}
		})
	}
}

func TestAccessLineRefused(t *testing.T) {
	t.Parallel()
	forEachAccessDestination(t, testAccessLineRefused)
}

func testAccessLineRefused(t *testing.T, where string) {
	srv, logs := accessServer(t, where)
	closed := nproxytest.FreePort(t) // nothing listens there
	p, port := tcpProxy(t, closed)
	nproxytest.StartServer(t, srv, 0, p)
	nproxytest.DialClosed(t, port, nil, 5*time.Second)
	_, target, _, _, end := access(t, logs, 1)
	if end != "refused" || target != "127.0.0.1:"+strconv.Itoa(closed) {
		t.Errorf("end %q target %s", end, target)
	}
	if n := p.Stats().ConnectErrors[nproxy.ConnectRefused]; n != 1 {
		t.Errorf("%d refused connects counted, want 1", n)
	}
}

// A server whose accept queue is full drops SYNs: the connect times out.
func TestAccessLineTimeout(t *testing.T) {
	t.Parallel()
	forEachAccessDestination(t, testAccessLineTimeout)
}

func testAccessLineTimeout(t *testing.T, where string) {
	srv, logs := accessServer(t, where)
	full := fullListener(t)
	port := nproxytest.FreePort(t)
	p := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: full, Timeout: 200 * time.Millisecond})
	nproxytest.StartServer(t, srv, 0, p)
	nproxytest.DialClosed(t, port, nil, 5*time.Second)
	if _, _, _, _, end := access(t, logs, 1); end != "timeout" {
		t.Errorf("end %q, want timeout", end)
	}
	if n := p.Stats().ConnectErrors[nproxy.ConnectTimeout]; n != 1 {
		t.Errorf("%d timeouts counted, want 1", n)
	}
}

// fullListener listens with a backlog of 0 and fills it with one
// connection that is never accepted, so that the kernel drops further SYNs.
func fullListener(t *testing.T) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	port := nproxytest.FreePort(t)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	filler, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return port
}

// echoServer is a TCP echo server on 127.0.0.1; it returns its port.
func echoServer(t *testing.T) int {
	b := newBackend(t)
	go func() {
		for c := range b.conns {
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return b.port
}

// --log-format json: one JSON object per line, Net::Proxy's level names.
func TestJSONLog(t *testing.T) {
	t.Parallel()
	srv, logs := newServer(t, 1)
	srv.SetLogFormat(nproxy.LogJSON) // before the first line
	p, port := tcpProxy(t, echoServer(t))
	nproxytest.StartServer(t, srv, 0, p)
	echoOnce(t, port, "json")
	logs.WaitFor(t, `"msg":"access"`)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if rec["msg"] == "access" && (rec["level"] != "NOTICE" || rec["in"] != 5.0 || rec["out"] != 5.0 || rec["end"] != "eof") {
			t.Errorf("access record %v", rec)
		}
	}
}

// The access log in JSON: one object per line, with the fields and values
// of the main log's access record (log/slog's), time included.
func TestJSONAccessLog(t *testing.T) {
	t.Parallel()
	srv, logs := newServer(t, 1)
	srv.SetLogFormat(nproxy.LogJSON)
	accessLog := &nproxytest.LogBuffer{}
	srv.SetAccessLog(accessLog)
	p, port := tcpProxy(t, echoServer(t))
	nproxytest.StartServer(t, srv, 0, p)
	echoOnce(t, port, "json")
	logs.WaitFor(t, `"msg":"access"`)
	got := jsonRecord(t, accessLog.WaitFor(t, "\n"))
	var want map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"access"`) {
			want = jsonRecord(t, line)
		}
	}
	for _, k := range []string{"level", "msg", "proxy", "client", "target", "in", "out", "end"} {
		if got[k] != want[k] {
			t.Errorf("%s: %v in the access log, %v in the log", k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("access log record %v, log record %v", got, want)
	}
	if _, err := time.Parse(time.RFC3339, got["time"].(string)); err != nil || got["duration"].(float64) <= 0 {
		t.Errorf("time %v, duration %v", got["time"], got["duration"])
	}
}

func jsonRecord(t *testing.T, line string) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", line, err)
	}
	return rec
}

// SetLogOutput, SetVerbosity and SetLogFormat may change while the loops
// log (the race detector watches).
func TestLogSettingsWhileRunning(t *testing.T) {
	t.Parallel()
	srv, logs, port := serveEcho(t)
	other := &nproxytest.LogBuffer{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			srv.SetLogOutput([]io.Writer{logs, other}[i%2])
			srv.SetVerbosity(1 + i%3)
			srv.SetLogFormat(nproxy.LogFormat(i % 2))
		}
	}()
	for i := 0; i < 20; i++ {
		echoOnce(t, port, "x")
	}
	close(stop)
	<-done
	if logs.String() == "" && other.String() == "" {
		t.Error("nothing logged")
	}
}

// Lines are gathered until a loop pass ends, but an error is written at
// once, and a line logged off the loops is written within flushDelay.
func TestLogFlush(t *testing.T) {
	t.Parallel()
	srv, logs := newServer(t, 1)
	srv.Logger().Log(context.Background(), nproxy.LevelNotice, "a notice")
	srv.Logger().Error("an error")
	if got := logs.String(); !strings.Contains(got, "a notice\n") || !strings.Contains(got, "an error\n") {
		t.Fatalf("after an error, the log has %q", got)
	}
	srv.Logger().Log(context.Background(), nproxy.LevelNotice, "off the loops")
	logs.WaitFor(t, "off the loops")
}

// Shutdown lets a connection in flight finish, refuses new clients from
// its start, turns Ready false, and returns nil once the last one ended;
// Serve then returns.
func TestShutdown(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, 0)
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	served := make(chan error, 1)
	srv.Register(p)
	go func() { served <- srv.Serve(context.Background()) }()
	waitFor(t, srv.Ready)
	c := nproxytest.Dial(t, port)
	sc := b.accept(t)

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	waitFor(t, func() bool { return !srv.Ready() })
	waitFor(t, func() bool {
		refused, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			refused.Close()
		}
		return err != nil
	})
	io.WriteString(c, "still relayed\n")
	if got := readLine(t, sc, bufio.NewReader(sc)); got != "still relayed\n" {
		t.Fatalf("during the drain the server got %q", got)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	c.Close()
	sc.Close()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v, want nil once every connection ended", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// Shutdown's context bounds the drain: past it, the connections left are
// cut and Shutdown says so.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, 0)
	b := newBackend(t)
	p, port := tcpProxy(t, b.port)
	srv.Register(p)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	waitFor(t, srv.Ready)
	c := nproxytest.Dial(t, port)
	b.accept(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	nproxytest.ExpectEOF(t, c, 5*time.Second)
	<-served
	if err := srv.Shutdown(context.Background()); err != nproxy.ErrNotRunning {
		t.Errorf("Shutdown of a stopped Server: %v, want ErrNotRunning", err)
	}
}
