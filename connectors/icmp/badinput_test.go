package icmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// Forged, malformed, replayed and flooding packets, written on a raw socket
// of the test's own, are dropped and counted by the in side.
func TestBadInput(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	nproxytest.CaptureLog(t, 0)
	echo := nproxytest.EchoServer(t)
	in := &In{Password: testPassword, MaxTunnels: 4}
	nproxytest.Serve(t, nproxy.New(in, &tcp.Out{}))
	conn, err := net.ListenPacket("ip4:icmp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}
	send := func(p packet) {
		p.icmpType, p.flag, p.icmpID = echoRequest, userFlag, p.id
		if _, err := conn.WriteTo(encodeSeed(p), to); err != nil {
			t.Fatal(err)
		}
	}
	start := func(id uint16) {
		send(packet{state: stateStart, id: id, ack: 65535, dstIP: [4]byte{127, 0, 0, 1}, dstPort: uint32(echo)})
	}
	wait := func(what string, c *atomic.Uint64, want uint64) {
		for deadline := time.Now().Add(5 * time.Second); c.Load() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d, want %d", what, c.Load(), want)
			}
		}
	}

	// Data for a session that does not exist, until the loop runs and
	// counts it.
	for deadline := time.Now().Add(5 * time.Second); in.Stats.Unknown.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("packets for unknown sessions are not counted")
		}
		send(packet{state: stateData, id: 2, seq: 1, data: []byte("forged")})
	}

	// A data length beyond the packet.
	bad := encodeSeed(packet{icmpType: echoRequest, state: stateData, flag: userFlag, id: 1, data: []byte("x")})
	binary.BigEndian.PutUint32(bad[icmpHeader+20:], 900)
	setChecksum(bad)
	conn.WriteTo(bad, to)
	wait("Malformed", &in.Stats.Malformed, 1)

	// A wrong answer to the challenge, then a replay of the start.
	start(3)
	time.Sleep(50 * time.Millisecond) // the challenge goes out; the test does not read it
	send(packet{state: stateAuth, id: 3, seq: 1, data: make([]byte, challengeLn)})
	wait("AuthFailed", &in.Stats.AuthFailed, 1)
	start(3)
	wait("Refused", &in.Stats.Refused, 1)

	// A flood of starts: MaxTunnels sessions wait for their answer, the
	// rest are refused.
	for id := uint16(100); id < 200; id++ {
		start(id)
	}
	wait("Refused", &in.Stats.Refused, 1+100-uint64(in.MaxTunnels))
}

// Without CAP_NET_RAW the connector says what it needs. The test binary
// runs again as nobody, without the capability, on the check alone.
func TestNoCapNetRaw(t *testing.T) {
	t.Parallel()
	if os.Getenv("NPROXY_ICMP_NOCAP") != "" {
		l, err := loop.New(loop.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Discard()
		if _, err := openCarrier(l, proxyRole, new(Stats)); !errors.Is(err, ErrNoRawSocket) {
			t.Fatalf("openCarrier without CAP_NET_RAW: %v, want ErrNoRawSocket", err)
		}
		return
	}
	setpriv := nproxytest.Command(t, "setpriv")
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-net_raw", os.Args[0], "-test.run", "^TestNoCapNetRaw$", "-test.v")
	cmd.Env = append(os.Environ(), "NPROXY_ICMP_NOCAP=1")
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("setpriv:")) {
		nproxytest.Unavailable(t, "cannot drop privileges here: %s", out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("%v\n%s", err, out)
	}
}
