package nproxytest_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// Listening tells a listener from a free port and from a socket that is
// only bound with SO_REUSEADDR, as nproxy's listeners are before listen.
func TestListening(t *testing.T) {
	port := nproxytest.FreePort(t)
	if nproxytest.Listening(port) {
		t.Errorf("free port %d seen as listening", port)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if nproxytest.Listening(port) {
		t.Errorf("port %d, only bound, seen as listening", port)
	}
	if err := syscall.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	if !nproxytest.Listening(port) {
		t.Errorf("port %d listens, not seen", port)
	}
}

// Start returns once the proxy listens; Mainloop(1) returns after one
// connection, and the log captured says what happened.
func TestStartWait(t *testing.T) {
	logs := nproxytest.CaptureLog(t, 0)
	port := nproxytest.FreePort(t)
	refused := nproxytest.FreePort(t) // nothing listens there
	run := nproxytest.Start(t, 1, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: refused}))
	c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the client was not closed: %v", err)
	}
	run.Wait(t, 5*time.Second)
	logs.WaitFor(t, "connection refused", fmt.Sprint(refused))
}

// Start fails the test when Mainloop returns before its ports listen.
func TestStartFailsEarly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	ok := nproxytest.FreePort(t)
	var failed bool
	done := make(chan struct{})
	go func() { // Fatal ends this goroutine only
		defer close(done)
		ft := &fatalT{TB: t}
		defer func() { failed = ft.fatal }()
		nproxytest.Start(ft, 0,
			nproxy.New(&tcp.In{Host: "127.0.0.1", Port: ok}, &tcp.Out{Host: "127.0.0.1", Port: 1}),
			nproxy.New(&tcp.In{Host: "127.0.0.1", Port: taken}, &tcp.Out{Host: "127.0.0.1", Port: 1}))
	}()
	<-done
	if !failed {
		t.Error("Start did not fail while a port was taken")
	}
}

// fatalT records Fatalf instead of failing the test, and ends the
// goroutine as Fatalf does.
type fatalT struct {
	testing.TB
	fatal bool
}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.TB.Logf("(expected) "+format, args...)
	f.fatal = true
	runtime.Goexit()
}

func (f *fatalT) Fatal(args ...any) {
	f.TB.Log(append([]any{"(expected)"}, args...)...)
	f.fatal = true
	runtime.Goexit()
}
