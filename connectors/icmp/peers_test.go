package icmp

import (
	"strconv"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

const testPassword = "s3cret"

// A real ptunnel client tunnels to an echo server through nproxy's icmp in,
// whose tcp out connects the destination the client asked for.
func TestPtunnelClientToIn(t *testing.T) {
	t.Parallel()
	ptunnel := nproxytest.Command(t, "ptunnel")
	if !inNetns(t) {
		return
	}
	logs := nproxytest.CaptureLog(t, 2)
	echo := nproxytest.EchoServer(t)
	in := &In{Password: testPassword, Allow: []string{"127.0.0.1:" + strconv.Itoa(echo)}}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	nproxytest.Serve(t, nproxy.New(in, &tcp.Out{}))
	lp := nproxytest.FreePort(t)
	nproxytest.StartPeer(t, ptunnel, "-p", "127.0.0.1", "-lp", strconv.Itoa(lp), "-da", "127.0.0.1", "-dp", strconv.Itoa(echo), "-x", testPassword, "-v", "1")
	nproxytest.WaitListening(t, lp)
	nproxytest.EchoThrough(t, lp, 1<<20, false, 60*time.Second)
	if n := in.Stats.AuthFailed.Load(); n != 0 {
		t.Errorf("AuthFailed = %d", n)
	}
	_ = logs
}

// nproxy's icmp out tunnels to an echo server through a real ptunnel proxy.
func TestOutToPtunnelProxy(t *testing.T) {
	t.Parallel()
	ptunnel := nproxytest.Command(t, "ptunnel")
	if !inNetns(t) {
		return
	}
	nproxytest.CaptureLog(t, 2)
	echo := nproxytest.EchoServer(t)
	nproxytest.StartPeer(t, ptunnel, "-x", testPassword, "-v", "1")
	port := nproxytest.FreePort(t)
	out := &Out{ProxyHost: "127.0.0.1", Host: "127.0.0.1", Port: echo, Password: testPassword}
	nproxytest.Serve(t, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	nproxytest.WaitListening(t, port)
	nproxytest.EchoThrough(t, port, 1<<20, false, 60*time.Second)
}
