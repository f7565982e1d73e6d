package loop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// unixEcho serves an echo on a unix stream socket at path until the test ends.
func unixEcho(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.(*net.UnixConn).CloseWrite() }()
		}
	}()
}

// A unix listener in the abstract namespace, relayed to a unix server by a
// non-blocking unix dial: the bytes come back byte-exact, by splice.
func TestUnixListenDialSplice(t *testing.T) {
	t.Parallel()
	l := newTestLoop(t, Config{})
	server := filepath.Join(t.TempDir(), "echo.sock")
	unixEcho(t, server)
	name := fmt.Sprintf("@nproxy-loop-test-%d", os.Getpid())
	listen := func() {
		_, err := l.ListenUnix(name, unix.SOCK_STREAM, func(c *Socket) {
			l.DialUnix(server, unix.SOCK_STREAM, time.Second, func(s *Socket, err error) {
				if err != nil {
					t.Error(err)
					l.Close(c)
					return
				}
				l.Relay(c, s)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	listen()
	runLoop(t, l)
	onLoop(l, func() {}) // Run has started: the listener listens
	c, err := net.Dial("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	data := randomBytes(2 << 20)
	go func() { c.Write(data); c.(*net.UnixConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through the relay: %d bytes of %d, err %v", len(got), len(data), err)
	}
	// All but the reads before the stream showed (copied: see copySmall).
	if n := l.Stats().Spliced.Load(); n < 2*uint64(len(data)-len(data)/8) {
		t.Fatalf("spliced %d bytes of %d", n, 2*len(data))
	}
}

// A unix connect to a full backlog fails with EAGAIN rather than waiting:
// DialUnix tries again until there is room, and gives up at its timeout.
func TestDialUnixFullBacklog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "full.sock")
	lfd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Listen(lfd, 0)
	for i := 0; ; i++ { // fill the backlog
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			if err != unix.EAGAIN || i == 0 {
				t.Fatalf("filling the backlog: %v after %d", err, i)
			}
			break
		}
	}
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	dial := func(timeout time.Duration) chan error {
		done := make(chan error, 1)
		l.Post(func() {
			l.DialUnix(path, unix.SOCK_STREAM, timeout, func(s *Socket, err error) {
				if s != nil {
					l.Close(s)
				}
				done <- err
			})
		})
		return done
	}
	if err := <-dial(100 * time.Millisecond); !errors.Is(err, unix.ETIMEDOUT) {
		t.Fatalf("a dial to a full backlog: %v, want a timeout", err)
	}
	done := dial(5 * time.Second)
	time.Sleep(20 * time.Millisecond) // let it meet the full backlog first
	if fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC); err == nil {
		defer unix.Close(fd)
	}
	if err := <-done; err != nil {
		t.Fatalf("the dial did not connect once there was room: %v", err)
	}
	os.Remove(path)
	if err := <-dial(time.Second); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("a dial to a missing socket: %v, want ENOENT", err)
	}
}
