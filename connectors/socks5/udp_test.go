package socks5_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy/connectors/socks5"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// TestUDPAssociateEcho: datagrams of random sizes (0 to 65,000 bytes) to
// IPv4 and IPv6 destinations come back byte-exact, one for one, with
// a header naming their source.
func TestUDPAssociateEcho(t *testing.T) {
	t.Parallel()
	port, in, _ := socksUDP(t, nil)
	echo4, _, _ := countingEcho(t, "127.0.0.1")
	echo6, _, _ := countingEcho(t, "::1")
	c := associate(t, port, false)
	sizes := []int{0, 1, 65000}
	for range 60 {
		sizes = append(sizes, rand.IntN(65001))
	}
	for i, size := range sizes {
		dst := []netip.AddrPort{echo4, echo6}[i%2]
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rand.Uint32())
		}
		c.send(addr(dst), payload)
		src, got := c.recv()
		if src != dst || !bytes.Equal(got, payload) {
			t.Fatalf("datagram %d (%d bytes to %s): got %d bytes from %s", i, size, dst, len(got), src)
		}
	}
	// A burst: boundaries kept, one datagram per datagram.
	for i := range 16 {
		c.send(addr(echo4), bytes.Repeat([]byte{byte(i)}, i+1))
	}
	for i := range 16 {
		if _, got := c.recv(); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, i+1)) {
			t.Fatalf("burst datagram %d: got % x", i, got)
		}
	}
	if n := in.UDPStats().Opened.Load(); n != 1 {
		t.Errorf("%d associations opened, want 1", n)
	}
}

// TestUDPAssociateName: a name destination is resolved by nproxy and its
// reply comes back with the address as source.
func TestUDPAssociateName(t *testing.T) {
	t.Parallel()
	port, _, _ := socksUDP(t, nil)
	echo, _, _ := countingEcho(t, "::") // localhost may be 127.0.0.1 or ::1 first
	c := associate(t, port, false)
	for i := range 5 {
		msg := []byte(fmt.Sprint("name ", i))
		c.send(hostAddr("localhost", int(echo.Port())), msg)
		src, got := c.recv()
		if !src.Addr().IsLoopback() || src.Port() != echo.Port() || !bytes.Equal(got, msg) {
			t.Fatalf("got %q from %s", got, src)
		}
	}
}

// TestUDPAssociateDNS: a DNS question to a real dnsmasq through the
// association gets dnsmasq's answer.
func TestUDPAssociateDNS(t *testing.T) {
	t.Parallel()
	dnsmasq := nproxytest.Command(t, "dnsmasq")
	dnsPort := nproxytest.FreePortOn(t, "127.0.0.1")
	nproxytest.StartPeer(t, dnsmasq, "--keep-in-foreground", "--port="+strconv.Itoa(dnsPort),
		"--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
		"--address=/nproxy.test/192.0.2.7", "--conf-file=/dev/null", "--user=root", "--log-facility=-")
	port, _, _ := socksUDP(t, nil)
	c := associate(t, port, true)
	q := new(dns.Msg)
	q.SetQuestion("www.nproxy.test.", dns.TypeA)
	wire, _ := q.Pack()
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(dnsPort))
	// dnsmasq listens some time after it starts: ask again until it answers.
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no answer from dnsmasq through the association")
		}
		c.send(addr(server), wire)
		c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		var m dns.Msg
		if n < 10 || m.Unpack(buf[10:n]) != nil {
			t.Fatalf("bad answer % x", buf[:n])
		}
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.7" || m.Id != q.Id {
			t.Fatalf("answer %v", m.Answer)
		}
		return
	}
}

// TestUDPAssociateAllow: destinations outside the allow rules are dropped
// and counted; allowed ones still pass.
func TestUDPAssociateAllow(t *testing.T) {
	t.Parallel()
	port, in, logs := socksUDP(t, map[string]any{"allow": "127.0.0.1:*"})
	echo4, _, _ := countingEcho(t, "127.0.0.1")
	echo6, got6, _ := countingEcho(t, "::1")
	c := associate(t, port, false)
	c.send(addr(echo6), []byte("forbidden address"))
	c.send(hostAddr("localhost", int(echo4.Port())), []byte("forbidden name"))
	c.send(addr(echo4), []byte("allowed"))
	if _, got := c.recv(); string(got) != "allowed" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, "2 datagrams not allowed", func() bool { return in.UDPStats().NotAllowed.Load() == 2 })
	if got6.Load() != 0 {
		t.Error("the forbidden destination got a datagram")
	}
	logs.WaitFor(t, "port "+strconv.Itoa(int(echo6.Port()))+" not allowed")
}

// TestUDPAssociateForeign: datagrams to the relay from another port (the
// client named its own) or another address, and to the outgoing socket from
// an address the client never sent to, are dropped and counted.
func TestUDPAssociateForeign(t *testing.T) {
	t.Parallel()
	port, in, _ := socksUDP(t, nil)
	echo, got, last := countingEcho(t, "127.0.0.1")
	c := associate(t, port, true)
	c.send(addr(echo), []byte("one"))
	if _, d := c.recv(); string(d) != "one" {
		t.Fatalf("got %q", d)
	}
	outgoing := last.Load().(net.Addr)
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		foreign, err := net.ListenPacket("udp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer foreign.Close()
		foreign.WriteTo(append([]byte{0, 0, 0}, append(addr(echo), "foreign"...)...), c.relay)
		foreign.WriteTo([]byte("to the outgoing socket"), outgoing)
	}
	waitFor(t, "4 foreign datagrams", func() bool { return in.UDPStats().Foreign.Load() == 4 })
	c.send(addr(echo), []byte("two"))
	if _, d := c.recv(); string(d) != "two" {
		t.Fatalf("got %q, want the echo of two", d)
	}
	if n := got.Load(); n != 2 {
		t.Errorf("the echo got %d datagrams, want 2", n)
	}
}

// TestUDPAssociateBadDatagrams: truncated headers, fragments, bad address
// types and names are dropped and counted; the association goes on.
func TestUDPAssociateBadDatagrams(t *testing.T) {
	t.Parallel()
	port, in, _ := socksUDP(t, nil)
	echo, got, _ := countingEcho(t, "127.0.0.1")
	c := associate(t, port, false)
	dst := addr(echo)
	long := hostAddr(strings.Repeat("a", 255), int(echo.Port()))
	bad := [][]byte{
		{0, 0},                              // shorter than RSV FRAG ATYP
		{0, 0, 0, 1, 127, 0},                // address cut
		append([]byte{0, 0, 0}, dst[:6]...), // port cut
		{0, 0, 0, 9, 1, 2, 3, 4, 0, 7},      // ATYP 9
		{0, 0, 0, 3, 0, 0, 7},               // empty name
		append([]byte{0, 0, 0}, long...),    // 255-byte name
		append([]byte{0, 0, 0}, hostAddr("a b", 7)...),
	}
	for _, d := range bad {
		c.conn.WriteToUDP(d, c.relay)
	}
	c.conn.WriteToUDP(append(append([]byte{0, 0, 1}, dst...), "fragment"...), c.relay)
	c.send(dst, []byte("good"))
	if _, d := c.recv(); string(d) != "good" {
		t.Fatalf("got %q", d)
	}
	st := in.UDPStats()
	waitFor(t, "the bad datagrams counted", func() bool {
		return st.BadHeaders.Load() == uint64(len(bad)) && st.Fragments.Load() == 1
	})
	if n := got.Load(); n != 1 {
		t.Errorf("the echo got %d datagrams, want 1", n)
	}
}

// TestUDPAssociateLimits: past max_associations the request gets 01; past
// max_destinations datagrams to new destinations are dropped.
func TestUDPAssociateLimits(t *testing.T) {
	t.Parallel()
	port, in, _ := socksUDP(t, map[string]any{"max_associations": 1, "max_destinations": 1})
	echo, _, _ := countingEcho(t, "127.0.0.1")
	other, got, _ := countingEcho(t, "127.0.0.1")
	c := associate(t, port, false)
	if _, code := tryAssociate(t, port, false); code != 1 {
		t.Errorf("second association: reply %d, want 1", code)
	}
	c.send(addr(echo), []byte("first"))
	if _, d := c.recv(); string(d) != "first" {
		t.Fatalf("got %q", d)
	}
	c.send(addr(other), []byte("second destination"))
	waitFor(t, "a datagram dropped", func() bool { return in.UDPStats().Dropped.Load() == 1 })
	if n := got.Load(); n != 0 {
		t.Errorf("a destination past max_destinations got %d datagrams", n)
	}
}

// TestUDPAssociateEnds: the association ends with its TCP connection, and
// its sockets with it (the process's fd count is back to where it was);
// an idle one ends after udp_timeout, closing the TCP connection.
func TestUDPAssociateEnds(t *testing.T) {
	// Not parallel: other tests' fds would change the count.
	port, in, _ := socksUDP(t, map[string]any{"udp_timeout": "1"})
	echo, _, _ := countingEcho(t, "127.0.0.1")
	base := nproxytest.OpenFDs(t)
	c := associate(t, port, false)
	c.send(addr(echo), []byte("one"))
	c.recv()
	if n := nproxytest.OpenFDs(t); n != base+2+3 {
		t.Errorf("%d fds open with one association, want %d (2 the client's, 3 nproxy's)", n, base+5)
	}
	c.ctrl.Close()
	c.conn.Close()
	st := in.UDPStats()
	waitFor(t, "the association to end", func() bool { return st.Associations.Load() == 0 })
	waitFor(t, "the fd count back to its baseline", func() bool { return nproxytest.OpenFDs(t) == base })

	idle := associate(t, port, false)
	idle.ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.ctrl.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle association: read %d, %v; want the connection closed", n, err)
	}
	waitFor(t, "the idle association to end", func() bool { return st.Associations.Load() == 0 })
}

// TestUDPAssociateHook: the hook sees each datagram's data (no header), one
// datagram per call; what it returns is sent, and nothing drops it.
func TestUDPAssociateHook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	in := &socks5.In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Hook: func(d []byte, _ *loop.Socket) []byte {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(d))
		if string(d) == "drop" {
			return nil
		}
		return bytes.ToUpper(d)
	}}
	runSocks(t, in)
	echo, got, _ := countingEcho(t, "127.0.0.1")
	c := associate(t, in.Port, false)
	for _, msg := range []string{"one", "drop", "three"} {
		c.send(addr(echo), []byte(msg))
	}
	for _, want := range []string{"ONE", "THREE"} {
		if _, d := c.recv(); string(d) != want {
			t.Fatalf("got %q, want %q", d, want)
		}
	}
	if n := got.Load(); n != 2 {
		t.Errorf("the echo got %d datagrams, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "one,drop,three" {
		t.Errorf("the hook saw %q", seen)
	}
}
