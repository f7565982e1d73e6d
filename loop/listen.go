package loop

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// acceptBackoff is how long a listener rests when the process or system is
// out of file descriptors: long enough not to spin on a listener that stays
// readable, short enough that clients barely notice once fds free up.
const acceptBackoff = 100 * time.Millisecond

// acceptBatch bounds the accepts per readiness event, so that a flood of
// clients cannot starve the sockets already relaying.
const acceptBatch = 64

// AcceptFunc receives each accepted client, already in the loop with no
// interest and no handler.
type AcceptFunc func(client *Socket)

type listener struct {
	accept AcceptFunc
	gate   *Gate // nil: every client is admitted
	// pauses counts the backoffs of the current shortage of fds (0 while
	// accepting), pausedAt is when it began: the operator is told once when
	// accept pauses and once when it resumes, not every acceptBackoff.
	pauses   int
	pausedAt time.Time
	packet   bool // its clients keep message boundaries: never spliced
}

// Listen opens a TCP listener on addr and adds it to the listeners list; it
// starts accepting when the loop runs. An IPv6 unspecified address also
// accepts IPv4 clients.
func (l *Loop) Listen(addr netip.AddrPort, accept AcceptFunc) (*Socket, error) {
	fd, ok := l.takeHandedOver(addr)
	if !ok {
		fd, ok = takeInherited(addr)
	}
	if !ok {
		var err error
		if fd, err = listenSocket(addr, l.cfg.ReusePort); err != nil {
			return nil, err
		}
	}
	// Accepted sockets inherit TCP_NODELAY from their listener (the kernel
	// clones the listener's tcp_sock): set once here, it spares a
	// setsockopt per client. Set whatever the fd's origin, since an
	// inherited or handed-over listener may come from a process that did not.
	setNoDelay(fd)
	nick := ""
	if sa, err := unix.Getsockname(fd); err == nil {
		nick = sockaddrString(sa) // the real port when addr asked for any
	}
	return l.addListener(fd, &listener{accept: accept}, nick)
}

// addListener adds the bound socket fd to the listeners list, and listens
// at once if the loop runs already. On error fd is closed.
func (l *Loop) addListener(fd int, ln *listener, nick string) (*Socket, error) {
	s, err := l.Adopt(fd, ln)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.SetNick(nick)
	if l.noticing() {
		l.notice("Add listener " + s.Nick())
	}
	l.WatchReader(s)
	if l.started {
		if err := startListening(s); err != nil {
			l.Close(s)
			return nil, err
		}
	}
	return s, nil
}

// startListening turns a bound socket into a listener. Listen only binds
// until the loop runs: a program that opens several listeners finds an
// address in use (at bind) before any of them accepts a client.
func startListening(s *Socket) error {
	// The kernel caps the backlog at net.core.somaxconn.
	return unix.Listen(s.fd, 4096)
}

// startListeners starts every listener bound before Run.
func (l *Loop) startListeners() error {
	for _, s := range l.sockets {
		if s == nil {
			continue
		}
		if _, ok := s.handler.(*listener); ok {
			if err := startListening(s); err != nil {
				return fmt.Errorf("listen on %s: %w", s.Nick(), err)
			}
		}
	}
	return nil
}

func listenSocket(addr netip.AddrPort, reusePort bool) (int, error) {
	fd, err := unix.Socket(family(addr.Addr()), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := configureListener(fd, addr, reusePort); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func configureListener(fd int, addr netip.AddrPort, reusePort bool) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if addr.Addr().Is6() && addr.Addr().IsUnspecified() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	return unix.Bind(fd, sockaddr(addr))
}

func (ln *listener) Readable(s *Socket) {
	l := s.loop
	for i := 0; i < acceptBatch && !s.closed; i++ {
		if ln.gate != nil && ln.gate.full() {
			l.UnwatchReader(s) // level-triggered: a readable listener left watched would spin
			ln.gate.pause(l)
			return
		}
		fd, err := accept(s.fd)
		switch err {
		case nil:
		case unix.EAGAIN:
			if ln.pauses > 0 {
				ln.resume(s)
			}
			return
		case unix.ECONNABORTED, unix.EINTR, unix.EPROTO:
			return
		default:
			if fdShortage(err) {
				ln.pause(s, err)
				return
			}
			l.log.Error("accept failed", "listener", s.Nick(), "err", err)
			return
		}
		c, err := l.Adopt(fd, nil)
		if err != nil {
			unix.Close(fd)
			l.log.Error("can't watch accepted socket", "err", err)
			continue
		}
		c.Raw = !ln.packet
		if ln.gate != nil && !ln.gate.admit(c) {
			l.Close(c)
			continue
		}
		if l.noticing() {
			l.notice("New connection on listener " + s.Nick())
		}
		ln.accept(c)
	}
}

// accept takes a client without its address: the nick is made lazily, and
// x/sys/unix's Accept4 adds a getsockopt(SO_PROTOCOL) per call to build one.
func accept(fd int) (int, error) {
	nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0,
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}

// fdShortage is an accept error that a pause may cure: the process or
// the system is out of fds or socket buffers.
func fdShortage(err error) bool {
	return err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM
}

// pause stops accepting for a while: the listener stays readable while
// clients queue, so without a pause the loop would spin on EMFILE. The
// first pause of a shortage is a warning (the default verbosity shows it:
// an operator must learn that the process is at its fd limit); the next
// ones are counted for resume's line.
func (ln *listener) pause(s *Socket, err error) {
	l := s.loop
	if ln.pauses == 0 {
		ln.pausedAt = time.Now()
		l.log.Log(nil, LevelWarning, fmt.Sprintf("accept paused on %s: %v (retrying every %v)", s.Nick(), err, acceptBackoff))
	}
	ln.pauses++
	l.UnwatchReader(s)
	l.AfterFunc(acceptBackoff, func() {
		switch {
		case s.closed:
		case ln.gate != nil && ln.gate.full():
			ln.gate.pause(l) // its leave watches the listener again
		default:
			l.WatchReader(s)
		}
	})
}

// resume ends a shortage of fds once every waiting client was taken (a
// single accept between two pauses is no end: at the limit, each fd freed
// lets one client in), in one line with its length.
func (ln *listener) resume(s *Socket) {
	s.loop.log.Log(nil, LevelWarning, fmt.Sprintf("accept resumed on %s after %d pauses in %v",
		s.Nick(), ln.pauses, time.Since(ln.pausedAt).Round(time.Millisecond)))
	ln.pauses = 0
}

func (ln *listener) Writable(*Socket) {}

// CloseListeners closes every listener of the loop; relayed connections go on.
func (l *Loop) CloseListeners() {
	for _, s := range l.sockets {
		if s != nil {
			if _, ok := s.handler.(*listener); ok {
				l.Close(s)
			}
		}
	}
}

func setNoDelay(fd int) {
	// Relayed bytes are already batched by the sender; Nagle would only add
	// latency to small exchanges.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}
