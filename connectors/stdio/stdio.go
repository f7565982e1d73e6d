// Package stdio is the stdio connector, Net::Proxy's wishlist item: the in
// side whose one connection is the process's own standard input and output,
// as OpenSSH's ProxyCommand expects:
//
//	ssh -o ProxyCommand='nproxy --in type=stdio --out type=connect,host=%h,port=%p,proxy_host=proxy' host
//
// In Go, a proxy with a stdio in runs one connection: nproxy.Mainloop(1).
//
//	p := nproxy.New(&stdio.In{}, &tcp.Out{Host: "127.0.0.1", Port: 22})
//	p.Register()
//	err := nproxy.Mainloop(1) // returns when the connection is over
//
// Both fds are made non-blocking and watched by the loop; where both are
// pipes or sockets, the relay splices. A tty or a file is read and written
// through buffers (epoll refuses regular files: they are always ready). The
// connector moves the connection to fds of its own and puts /dev/null on fds
// 0 and 1, so that closing the connection's output really is its EOF for
// the reader, and nothing else can write to it.
package stdio

import (
	"errors"
	"sync/atomic"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

func init() {
	connectors.Register("stdio", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return nil
	})
}

// ErrFailed is what Err returns when the connection ended before it was
// relayed: the out side failed (its error was logged).
var ErrFailed = errors.New("the connection failed before it was relayed")

// In is the process's standard input and output, as one connection.
type In struct {
	// Hook, if set, sees the data read from standard input.
	Hook loop.Hook

	taken  atomic.Bool  // standard input and output are taken, once per process
	failed atomic.Bool  // the connection ended without being relayed
	closed atomic.Bool  // the connection is over
	flags  atomic.Int64 // standard input's file status flags before nproxy's
}

// Err reports ErrFailed if the connection ended without being relayed.
func (c *In) Err() error {
	if c.failed.Load() {
		return ErrFailed
	}
	return nil
}

// Done reports whether the connection is over.
func (c *In) Done() bool { return c.closed.Load() }

// Listen implements connectors.In: the connection is handed to the proxy
// once the loop runs. With several loops, the first one serves it.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if !c.taken.CompareAndSwap(false, true) {
		return nil
	}
	r, w, err := c.takeStdio()
	if err != nil {
		c.taken.Store(false)
		return err
	}
	s, _ := l.AdoptSplit(r, w, nil)
	s.Raw = splices(r) && splices(w)
	s.Connector, s.Hook = c, c.Hook
	s.SetNick("stdio")
	l.Post(func() {
		h.Accepted(l, s)
		if s.Closed() { // failed at once (a command that cannot start)
			c.over(s)
			return
		}
		s.Closer = &closer{c: c, next: s.Closer}
	})
	return nil
}

// takeStdio moves standard input and output to new fds, set non-blocking,
// and puts /dev/null in their place.
func (c *In) takeStdio() (r, w int, err error) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	defer unix.Close(null)
	r, err = unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return -1, -1, err
	}
	w, err = unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		unix.Close(r)
		return -1, -1, err
	}
	flags, _ := unix.FcntlInt(uintptr(r), unix.F_GETFL, 0)
	c.flags.Store(int64(flags))
	unix.Dup2(null, 0)
	unix.Dup2(null, 1)
	unix.SetNonblock(r, true)
	unix.SetNonblock(w, true)
	return r, w, nil
}

// splices reports whether splice(2) works on fd: pipes and sockets.
func splices(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFIFO || t == unix.S_IFSOCK
}

// over records the end of the connection. Standard input gets its file
// flags back: O_NONBLOCK belongs to the open file, which a shell or a
// terminal shares with nproxy. (Standard output's is restored by the same
// call when both are one tty; a pipe's reader does not care.)
func (c *In) over(s *loop.Socket) {
	if !s.Relayed() {
		c.failed.Store(true)
	}
	unix.FcntlInt(uintptr(s.Fd()), unix.F_SETFL, int(c.flags.Load()))
	c.closed.Store(true)
}

// closer is told when the connection closes, before the proxy counts it.
type closer struct {
	c    *In
	next loop.Closer
}

func (k *closer) SocketClosed(s *loop.Socket) {
	k.c.over(s)
	if k.next != nil {
		k.next.SocketClosed(s)
	}
}
