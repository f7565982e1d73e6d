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
	l      *Loop
	sotype int // unix.SOCK_STREAM or unix.SOCK_DGRAM
	host   string
	port   int
	addrs  []netip.Addr
	done   DialFunc
	timer  *Timer
	s      *Socket
	err    error
	opt    DialOptions
}

// DialOptions changes how Dial's socket is made.
type DialOptions struct {
	// Local, if valid, is bound before connecting: the outgoing connection
	// comes from this address.
	Local netip.AddrPort
	// Transparent sets IP_TRANSPARENT (IPV6_TRANSPARENT) so that Local may be
	// an address this host does not own, such as the client's own: the
	// server then sees the client, and routing must bring its answers back
	// here (see the README's transparent mode). It needs CAP_NET_ADMIN.
	Transparent bool
}

// Dial connects to host:port without blocking the loop: a name is resolved on
// another goroutine (answers are cached briefly), the connect is
// non-blocking, and done runs on the loop when it succeeds, fails, or times
// out (0 means Config.DialTimeout, or else DefaultDialTimeout). host may be an IPv6 address in brackets
// ("[::1]"), as URLs and most tools write it.
func (l *Loop) Dial(host string, port int, timeout time.Duration, done DialFunc) {
	l.dial(unix.SOCK_STREAM, DialOptions{}, host, port, timeout, done)
}

// DialWith is Dial with options: a local address to bind, transparently or
// not.
func (l *Loop) DialWith(opt DialOptions, host string, port int, timeout time.Duration, done DialFunc) {
	l.dial(unix.SOCK_STREAM, opt, host, port, timeout, done)
}

// DialDatagram opens a UDP socket connected to host:port as Dial does (the
// name resolved off the loop), and hands it to done as a datagram socket
// (see SetDatagram). A connected UDP socket receives only from its server,
// and learns from an ICMP port unreachable (ECONNREFUSED on its next read).
// For an IP address, done runs before DialDatagram returns: connect(2) on UDP
// only sets the peer, at once, so the socket is handed over without a
// dialer, a timer and a wait for writability, which every UDP flow would pay
// for (the udp in connector opens a socket per client).
func (l *Loop) DialDatagram(host string, port int, timeout time.Duration, done DialFunc) {
	a, err := netip.ParseAddr(unbracket(host))
	if err != nil {
		l.dial(unix.SOCK_DGRAM, DialOptions{}, host, port, timeout, done)
		return
	}
	fd, err := connectedSocket(unix.SOCK_DGRAM, DialOptions{}, netip.AddrPortFrom(a, uint16(port)))
	if err != nil {
		done(nil, dialFailure(host, port, err))
		return
	}
	s, _ := l.Adopt(fd, nil)
	s.SetDatagram(DatagramOptions{})
	done(s, nil)
}

func (l *Loop) dial(sotype int, opt DialOptions, host string, port int, timeout time.Duration, done DialFunc) {
	if timeout <= 0 {
		timeout = l.cfg.DialTimeout
	}
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	host = unbracket(host)
	d := &dialer{l: l, sotype: sotype, host: host, port: port, done: done, opt: opt}
	d.timer = l.AfterFunc(timeout, d.expire)
	if a, err := netip.ParseAddr(host); err == nil {
		d.start([]netip.Addr{a})
		return
	}
	l.Resolve(host, timeout, func(addrs []netip.Addr, err error) {
		switch {
		case d.done == nil:
			// timed out meanwhile
		case err != nil:
			d.finish(nil, fmt.Errorf("can't resolve %s: %w", d.host, err))
		default:
			d.start(addrs)
		}
	})
}

// Resolve looks host up on another goroutine, within timeout, and calls done
// on the loop with its addresses (IPv4-mapped ones unmapped) or the error.
// Answers are cached for resolveTTL, as Dial's are (it uses Resolve); a
// cached answer calls done at once.
func (l *Loop) Resolve(host string, timeout time.Duration, done func(addrs []netip.Addr, err error)) {
	if r, ok := l.resolvedNames[host]; ok && time.Now().Before(r.expires) {
		done(r.addrs, nil)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		l.Post(func() {
			if err == nil {
				for i, a := range addrs {
					addrs[i] = a.Unmap()
				}
				if l.resolvedNames == nil {
					l.resolvedNames = map[string]resolved{}
				}
				l.resolvedNames[host] = resolved{addrs, time.Now().Add(resolveTTL)}
			}
			done(addrs, err)
		})
	}()
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
	fd, err := connectedSocket(d.sotype, d.opt, ap)
	if err != nil {
		return nil, err
	}
	s, err := d.l.Adopt(fd, d)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if d.sotype == unix.SOCK_DGRAM {
		// connect(2) on UDP only sets the peer: it is writable at once.
		s.SetDatagram(DatagramOptions{})
	} else {
		s.Raw = true
	}
	d.l.WatchWriter(s)
	return s, nil
}

// connectedSocket opens a non-blocking socket of sotype and starts its
// connect to ap (a UDP one is connected on return), bound as opt says.
func connectedSocket(sotype int, opt DialOptions, ap netip.AddrPort) (int, error) {
	fd, err := unix.Socket(family(ap.Addr()), sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if sotype == unix.SOCK_STREAM {
		setNoDelay(fd)
	}
	if err := bindLocal(fd, opt, ap.Addr()); err != nil {
		unix.Close(fd)
		return -1, err
	}
	err = unix.Connect(fd, sockaddr(ap))
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// bindLocal applies the options' local address, if any, to fd before its
// connect to an address of to's family.
func bindLocal(fd int, opt DialOptions, to netip.Addr) error {
	local := opt.Local
	if !local.IsValid() {
		return nil
	}
	if local.Addr().Is4() != to.Is4() {
		return fmt.Errorf("can't bind %s to reach %s: not the same address family", local, to)
	}
	if opt.Transparent {
		var err error
		if to.Is4() {
			err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
		}
		if err != nil {
			return fmt.Errorf("can't set IP_TRANSPARENT: %w", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		return fmt.Errorf("can't bind %s: %w", local, err)
	}
	return nil
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

func (d *dialer) failure(err error) error { return dialFailure(d.host, d.port, err) }

func dialFailure(host string, port int, err error) error {
	return fmt.Errorf("can't connect to %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
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
