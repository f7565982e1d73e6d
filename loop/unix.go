package loop

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Unix-domain sockets: listeners and non-blocking dials. A path that starts
// with '@' is a name in Linux's abstract namespace (no file; x/sys/unix
// turns the '@' into the leading NUL the kernel expects). Stream sockets are
// Raw: splice(2) works on them as on TCP. Seqpacket sockets keep message
// boundaries, so they always take the buffer path.

// unixRetryMax caps the wait between two connects to a unix listener whose
// backlog is full.
const unixRetryMax = 50 * time.Millisecond

// ListenUnix binds a unix-domain socket of type typ (unix.SOCK_STREAM or
// unix.SOCK_SEQPACKET) at path and adds it to the listeners list; like
// Listen, it starts accepting when the loop runs, so that the caller may set
// the file's mode and owner before any client can connect.
func (l *Loop) ListenUnix(path string, typ int, accept AcceptFunc) (*Socket, error) {
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return l.addListener(fd, &listener{accept: accept, packet: typ != unix.SOCK_STREAM}, path)
}

// unixDialer is one DialUnix in progress.
type unixDialer struct {
	l     *Loop
	path  string
	typ   int
	done  DialFunc
	wait  time.Duration
	until time.Time
}

// DialUnix connects to the unix-domain socket at path, of type typ, without
// blocking the loop. A unix connect completes or fails at once, except when
// the listener's backlog is full (EAGAIN): then it is retried, with a
// growing pause, until timeout (0 means DefaultDialTimeout). done runs on
// the loop, possibly before DialUnix returns.
func (l *Loop) DialUnix(path string, typ int, timeout time.Duration, done DialFunc) {
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	d := &unixDialer{l: l, path: path, typ: typ, done: done, wait: time.Millisecond, until: time.Now().Add(timeout)}
	d.try()
}

func (d *unixDialer) try() {
	fd, err := unix.Socket(unix.AF_UNIX, d.typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		d.done(nil, d.failure(err))
		return
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: d.path})
	if err == nil {
		s, aerr := d.l.Adopt(fd, nil)
		if aerr != nil {
			unix.Close(fd)
			d.done(nil, d.failure(aerr))
			return
		}
		s.Raw = d.typ == unix.SOCK_STREAM
		s.SetNick(d.path)
		d.done(s, nil)
		return
	}
	unix.Close(fd)
	if err != unix.EAGAIN || !time.Now().Before(d.until) {
		if err == unix.EAGAIN {
			err = unix.ETIMEDOUT
		}
		d.done(nil, d.failure(err))
		return
	}
	// The backlog is full: the kernel gives no event for room in it, so
	// the connect is simply tried again a little later.
	d.l.AfterFunc(min(d.wait, time.Until(d.until)), d.try)
	d.wait = min(2*d.wait, unixRetryMax)
}

func (d *unixDialer) failure(err error) error {
	return fmt.Errorf("can't connect to %s: %w", d.path, err)
}
