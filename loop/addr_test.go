package loop

import (
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestClientAddressSlots: the peer address is the socket's own until a
// preamble replaces it, and then the nick follows; the destination slot is
// empty until set.
func TestClientAddressSlots(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	lfd, port := rawListener(t, 16)
	defer unix.Close(lfd)
	s, err, _ := dialOnLoop(t, l, "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	onLoop(l, func() {
		if got := s.RemoteAddr(); got != netip.MustParseAddrPort("127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("RemoteAddr %v", got)
		}
		if got := s.LocalAddr(); got.Addr() != netip.MustParseAddr("127.0.0.1") || got.Port() == 0 {
			t.Errorf("LocalAddr %v", got)
		}
		if _, _, ok := s.Destination(); ok {
			t.Error("a destination before any was set")
		}
		s.Nick() // computed from the peer, then replaced below
		client := netip.MustParseAddrPort("[2001:db8::1]:4242")
		s.SetRemoteAddr(client)
		s.SetLocalAddr(netip.MustParseAddrPort("192.0.2.1:443"))
		s.SetDestination("example.org", 443)
		if s.RemoteAddr() != client || s.Nick() != client.String() || s.LocalAddr().String() != "192.0.2.1:443" {
			t.Errorf("after SetRemoteAddr: %v %q %v", s.RemoteAddr(), s.Nick(), s.LocalAddr())
		}
		if h, p, ok := s.Destination(); !ok || h != "example.org" || p != 443 {
			t.Errorf("Destination %q %d %v", h, p, ok)
		}
		l.Close(s)
	})
}

// TestDialWithBind: DialWith binds the local address asked for; one of the
// other family is an error, not a silent direct connect.
func TestDialWithBind(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	lfd, port := rawListener(t, 16)
	defer unix.Close(lfd)
	dial := func(local netip.AddrPort) (*Socket, error) {
		type result struct {
			s   *Socket
			err error
		}
		res := make(chan result, 1)
		l.Post(func() {
			l.DialWith(DialOptions{Local: local}, "127.0.0.1", port, 0, func(s *Socket, err error) { res <- result{s, err} })
		})
		r := <-res
		return r.s, r.err
	}
	s, err := dial(netip.MustParseAddrPort("127.0.0.9:0"))
	if err != nil {
		t.Fatal(err)
	}
	onLoop(l, func() {
		if got := s.LocalAddr().Addr(); got != netip.MustParseAddr("127.0.0.9") {
			t.Errorf("bound to %v", got)
		}
		l.Close(s)
	})
	if _, err := dial(netip.MustParseAddrPort("[::1]:0")); err == nil || !contains(err.Error(), "not the same address family") {
		t.Errorf("IPv6 local for an IPv4 server: %v", err)
	}
}
