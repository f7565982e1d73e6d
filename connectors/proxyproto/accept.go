package proxyproto

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds the wait for a whole header when
// Accept.ProxyProtocolTimeout is 0.
const DefaultTimeout = 5 * time.Second

// Accept is the in side: embedded in an in connector, it makes the
// connector expect a PROXY header from each client (when ProxyProtocol is
// set) before its own work. Its zero value expects none.
type Accept struct {
	// ProxyProtocol is the header version expected: "v1", "v2" or "any";
	// empty means no header.
	ProxyProtocol string `param:"proxy_protocol"`
	// ProxyProtocolFrom lists the CIDRs (or addresses) allowed to send a
	// header; a client from elsewhere is refused. Empty means any.
	ProxyProtocolFrom []string `param:"proxy_protocol_from"`
	// ProxyProtocolTimeout bounds the wait for the whole header;
	// DefaultTimeout when 0.
	ProxyProtocolTimeout time.Duration `param:"proxy_protocol_timeout"`
}

// Validate checks the version and the CIDRs. Connectors with a Validate of
// their own call it from theirs; for the others it is promoted.
func (a *Accept) Validate() error {
	_, _, err := a.parse()
	return err
}

func (a *Accept) parse() (version int, from []netip.Prefix, err error) {
	switch a.ProxyProtocol {
	case "":
		return -1, nil, nil
	case "v1":
		version = 1
	case "v2":
		version = 2
	case "any":
	default:
		return 0, nil, fmt.Errorf("proxy_protocol must be v1, v2 or any, not %q", a.ProxyProtocol)
	}
	for _, s := range a.ProxyProtocolFrom {
		for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
			p, err := parsePrefix(item)
			if err != nil {
				return 0, nil, fmt.Errorf("proxy_protocol_from: %q is not a CIDR or an address", item)
			}
			from = append(from, p)
		}
	}
	return version, from, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Wrap returns the accept function to listen with: next, run for each
// client once its header was read and its address replaced (next itself
// when no header is expected). Listen uses it with connectors.Listen; a
// connector with listeners of its own (unix) embeds Accept and wraps its
// accept function with Wrap. A client that sends no valid
// header in time, or is not allowed to send one, is logged and closed.
func (a *Accept) Wrap(next loop.AcceptFunc) (loop.AcceptFunc, error) {
	return a.wrap(next, false)
}

// wrap is Wrap; with stash, the bytes a client sent after its header are
// read with it and stashed for the relay rather than left in the socket.
func (a *Accept) wrap(next loop.AcceptFunc, stash bool) (loop.AcceptFunc, error) {
	version, from, err := a.parse()
	if err != nil || version < 0 {
		return next, err
	}
	timeout := a.ProxyProtocolTimeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return func(s *loop.Socket) {
		if !allowed(s, from) {
			refuse(s, fmt.Errorf("%s may not send a PROXY header (proxy_protocol_from)", s.RemoteAddr().Addr()))
			return
		}
		// The header is often there already (a proxy in front sends it
		// with its first segment): reading it now spares an epoll_ctl, a
		// pass of the loop, the deadline's timer and the reading's
		// allocation. Readable makes a reading s's handler, watches the
		// socket and sets the deadline only if it must wait.
		first := reading{version: version, next: next, timeout: timeout, stash: stash}
		first.Readable(s)
	}, nil
}

// allowed reports whether client may send a header. A peer without an IP
// address (a unix socket) is local, and allowed.
func allowed(client *loop.Socket, from []netip.Prefix) bool {
	if len(from) == 0 {
		return true
	}
	addr := client.RemoteAddr()
	if !addr.IsValid() {
		return true
	}
	for _, p := range from {
		if p.Contains(addr.Addr().Unmap()) {
			return true
		}
	}
	return false
}

func refuse(s *loop.Socket, err error) {
	s.Loop().Logger().Error(fmt.Sprintf("proxy_protocol: client %s: %v", s.Nick(), err))
	s.Loop().Close(s)
}

// Listen is connectors.Listen with the header read first: an in connector
// that embeds Accept listens with c.Accept.Listen where it called
// connectors.Listen, and gains proxy_protocol.
func (a *Accept) Listen(l *loop.Loop, host string, port int, accept loop.AcceptFunc) error {
	return a.listen(l, host, port, accept, false)
}

// ListenToRelay is Listen for an in connector whose clients go from accept
// straight to the relay, nothing of theirs read nor hooked before it (tcp
// without a hook): the header is read with whatever the client sent after
// it, in one read(2), and those bytes are stashed for the relay
// (loop.Socket.Stash), where Listen peeks to find the header's end and
// reads only the header, leaving the rest in the socket for a protocol
// that reads the fd itself (TLS, SOCKS5). It spares the peek, one syscall
// per client.
func (a *Accept) ListenToRelay(l *loop.Loop, host string, port int, accept loop.AcceptFunc) error {
	return a.listen(l, host, port, accept, true)
}

func (a *Accept) listen(l *loop.Loop, host string, port int, accept loop.AcceptFunc, stash bool) error {
	wrapped, err := a.wrap(accept, stash)
	if err != nil {
		return err
	}
	listeners, err := connectors.ListenSockets(l, host, port, wrapped)
	for _, s := range listeners {
		deferAccept(s.Fd(), a.ProxyProtocol != "")
	}
	return err
}

// deferAccept asks the kernel (TCP_DEFER_ACCEPT) to hand over a client only
// once it has sent something, as haproxy's defer-accept does: a client that
// must speak first (the header) then comes with its header, which is read
// at accept, where otherwise one client in four or five (measured under
// load) is accepted before its first segment and waits a pass of the loop,
// two epoll_ctl calls, a timer and an allocation for it. A client that
// stays silent is handed over anyway after about a second (the kernel's
// first SYN-ACK retransmission), and proxy_protocol_timeout runs from
// there. It is an optimisation only: where the option fails, the header is
// awaited on the loop as before. Without a header it is turned off, since
// a listener handed over by a reload keeps its options, and a client that
// waits for the server to speak first must not wait for the kernel.
func deferAccept(fd int, on bool) {
	secs := 0
	if on {
		secs = 1
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, secs)
}
