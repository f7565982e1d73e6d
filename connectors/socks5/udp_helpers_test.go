package socks5_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/socks5"
	"github.com/nproxy/nproxy/nproxytest"
)

// socksUDP runs a socks5 in built from params, as socksIn does but on a
// Server of its own (tests run in parallel) logging at info level, and
// returns its port, the connector (for its UDP counters) and the log.
func socksUDP(t *testing.T, params map[string]any) (port int, in *socks5.In, logs *nproxytest.LogBuffer) {
	t.Helper()
	in = buildSocks(t, params)
	return in.Port, in, runSocks(t, in)
}

// runSocks runs in in front of a tcp out without host, on a Server of its
// own, and returns its log.
func runSocks(t *testing.T, in *socks5.In) *nproxytest.LogBuffer {
	t.Helper()
	srv, logs := &nproxy.Server{}, &nproxytest.LogBuffer{}
	srv.SetLogOutput(logs)
	srv.SetVerbosity(2)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nproxy's log:\n%s", logs)
		}
	})
	nproxytest.StartServer(t, srv, 0, nproxy.New(in, tcpOut(t)))
	return logs
}

// udpClient is a SOCKS5 UDP client (RFC 1928 §7): a control connection and
// the UDP socket it sends from.
type udpClient struct {
	t     *testing.T
	ctrl  net.Conn
	conn  *net.UDPConn
	relay *net.UDPAddr
}

// associate asks the server on port for a UDP association; fixed names the
// client's UDP port in the request (else 0: any port).
func associate(t *testing.T, port int, fixed bool) *udpClient {
	t.Helper()
	c, code := tryAssociate(t, port, fixed)
	if code != 0 {
		t.Fatalf("UDP ASSOCIATE: reply %d", code)
	}
	return c
}

// tryAssociate asks for a UDP association and returns the reply code.
func tryAssociate(t *testing.T, port int, fixed bool) (*udpClient, byte) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctrl, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	ctrl.SetDeadline(time.Now().Add(10 * time.Second))
	from := 0
	if fixed {
		from = conn.LocalAddr().(*net.UDPAddr).Port
	}
	req := append([]byte{5, 1, 0, 5, 3, 0}, addr(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(from)))...)
	if _, err := ctrl.Write(req); err != nil {
		t.Fatal(err)
	}
	rep := make([]byte, 2+10)
	if _, err := io.ReadFull(ctrl, rep[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ctrl, rep[2:4]); err != nil {
		t.Fatal(err)
	}
	if rep[3] != 0 {
		return nil, rep[3]
	}
	if _, err := io.ReadFull(ctrl, rep[4:]); err != nil || rep[5] != 1 {
		t.Fatalf("reply % x: %v", rep, err)
	}
	relay := &net.UDPAddr{IP: net.IP(rep[6:10]), Port: int(binary.BigEndian.Uint16(rep[10:]))}
	return &udpClient{t: t, ctrl: ctrl, conn: conn, relay: relay}, 0
}

// addr is ATYP ADDR PORT for an address.
func addr(ap netip.AddrPort) []byte {
	b := []byte{4}
	if ap.Addr().Is4() {
		b = []byte{1}
	}
	return binary.BigEndian.AppendUint16(append(b, ap.Addr().AsSlice()...), ap.Port())
}

// hostAddr is ATYP ADDR PORT for a name.
func hostAddr(host string, port int) []byte {
	return binary.BigEndian.AppendUint16(append([]byte{3, byte(len(host))}, host...), uint16(port))
}

// send sends payload to dst (ATYP ADDR PORT) through the relay.
func (c *udpClient) send(dst, payload []byte) {
	c.t.Helper()
	d := append(append([]byte{0, 0, 0}, dst...), payload...)
	if _, err := c.conn.WriteToUDP(d, c.relay); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next datagram from the relay: the source its header
// names and its data.
func (c *udpClient) recv() (netip.AddrPort, []byte) {
	c.t.Helper()
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		c.t.Fatalf("no datagram from the relay: %v", err)
	}
	if from.Port != c.relay.Port {
		c.t.Fatalf("datagram from %v, not the relay %v", from, c.relay)
	}
	d := buf[:n]
	var src netip.AddrPort
	switch {
	case n >= 10 && d[3] == 1:
		src, d = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d[4:8])), binary.BigEndian.Uint16(d[8:])), d[10:]
	case n >= 22 && d[3] == 4:
		src, d = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d[4:20])), binary.BigEndian.Uint16(d[20:])), d[22:]
	default:
		c.t.Fatalf("bad header from the relay: % x", d[:min(n, 22)])
	}
	return src, d
}

// countingEcho runs a UDP echo server on host that counts the datagrams it
// got and keeps the source of the latest; it returns its address.
func countingEcho(t *testing.T, host string) (netip.AddrPort, *atomic.Int64, *atomic.Value) {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	var last atomic.Value
	go func() {
		buf := make([]byte, 65536)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			n.Add(1)
			last.Store(from)
			c.WriteTo(buf[:k], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), &n, &last
}

// waitFor waits, at most 5 s, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
