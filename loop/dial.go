package loop

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultDialTimeout bounds a Dial whose timeout is 0.
const DefaultDialTimeout = 10 * time.Second

// resolveTTL is how long a resolved name is reused. The resolver gives no
// TTLs; a short fixed one spares a lookup per connection without pinning a
// changed address for long.
const resolveTTL = 10 * time.Second

// DialFunc receives the connected socket (with no interest and no handler)
// or the reason there is none.
type DialFunc func(s *Socket, err error)

type resolved struct {
	addrs   []netip.Addr
	expires time.Time
}

// dialer is one Dial in progress: it tries each address of the name in turn
// until one connects, within one overall deadline.
type dialer struct {
	l     *Loop
	host  string
	port  int
	addrs []netip.Addr
	done  DialFunc
	timer *Timer
	s     *Socket
	err   error
}

// Dial connects to host:port without blocking the loop: a name is resolved on
// another goroutine (answers are cached briefly), the connect is
// non-blocking, and done runs on the loop when it succeeds, fails, or times
// out (0 means Config.DialTimeout, or else DefaultDialTimeout). host may be an IPv6 address in brackets
// ("[::1]"), as URLs and most tools write it.
func (l *Loop) Dial(host string, port int, timeout time.Duration, done DialFunc) {
	if timeout <= 0 {
		timeout = l.cfg.DialTimeout
	}
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	host = unbracket(host)
	d := &dialer{l: l, host: host, port: port, done: done}
	d.timer = l.AfterFunc(timeout, d.expire)
	if a, err := netip.ParseAddr(host); err == nil {
		d.start([]netip.Addr{a})
		return
	}
	if r, ok := l.resolvedNames[host]; ok && time.Now().Before(r.expires) {
		d.start(r.addrs)
		return
	}
	go d.resolve(timeout)
}

func (d *dialer) resolve(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", d.host)
	d.l.Post(func() {
		if d.done == nil {
			return // timed out meanwhile
		}
		if err != nil {
			d.finish(nil, fmt.Errorf("can't resolve %s: %w", d.host, err))
			return
		}
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
		if d.l.resolvedNames == nil {
			d.l.resolvedNames = map[string]resolved{}
		}
		d.l.resolvedNames[d.host] = resolved{addrs, time.Now().Add(resolveTTL)}
		d.start(addrs)
	})
}

func (d *dialer) start(addrs []netip.Addr) {
	d.addrs = addrs
	d.next()
}

// next tries the next address; the last error is reported if none is left.
func (d *dialer) next() {
	for len(d.addrs) > 0 {
		a := d.addrs[0]
		d.addrs = d.addrs[1:]
		s, err := d.connect(netip.AddrPortFrom(a, uint16(d.port)))
		if err == nil {
			d.s = s
			return
		}
		d.err = err
	}
	d.finish(nil, d.failure(d.err))
}

func (d *dialer) connect(ap netip.AddrPort) (*Socket, error) {
	fd, err := unix.Socket(family(ap.Addr()), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	setNoDelay(fd)
	err = unix.Connect(fd, sockaddr(ap))
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, err
	}
	s, err := d.l.Adopt(fd, d)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.Raw = true
	d.l.WatchWriter(s)
	return s, nil
}

// Writable without a hang-up means the connect succeeded: the kernel reports
// a failed one with EPOLLERR, which goes to Readable first. No SO_ERROR
// round trip is needed on the way that matters.
func (d *dialer) Writable(s *Socket) {
	d.s = nil
	s.handler = nil
	s.interest = 0 // the epoll set keeps EPOLLOUT until whoever takes s decides
	d.finish(s, nil)
	d.l.syncInterest(s)
}

// Readable during a connect is a failure (or a refusal on loopback); SO_ERROR
// says which.
func (d *dialer) Readable(s *Socket) {
	errno, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil {
		if errno == 0 {
			return // spurious: Writable follows
		}
		err = unix.Errno(errno)
	}
	d.s = nil
	d.l.Close(s)
	d.err = err
	d.next()
}

func (d *dialer) expire() {
	if d.s != nil {
		d.l.Close(d.s)
		d.s = nil
	}
	d.finish(nil, d.failure(unix.ETIMEDOUT))
}

func (d *dialer) failure(err error) error {
	return fmt.Errorf("can't connect to %s: %w", net.JoinHostPort(d.host, strconv.Itoa(d.port)), err)
}

func (d *dialer) finish(s *Socket, err error) {
	done := d.done
	if done == nil {
		return
	}
	d.done = nil
	d.timer.Stop()
	done(s, err)
}

// unbracket removes the brackets around an IPv6 address; a name stays as it
// is.
func unbracket(host string) string {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}
