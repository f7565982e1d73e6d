package icmp

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// nproxy on both sides of the fence: tcp in → icmp out, icmp in → tcp out;
// then a wrong password and a destination outside the allow list, each
// counted and closed.
func TestNproxyToNproxy(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	nproxytest.CaptureLog(t, 2)
	echo := nproxytest.EchoServer(t)
	in := &In{Password: testPassword, Allow: []string{"127.0.0.1:" + strconv.Itoa(echo)}}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	good, wrong, refused := nproxytest.FreePort(t), nproxytest.FreePort(t), nproxytest.FreePort(t)
	out := func(password string, port int) *Out {
		return &Out{ProxyHost: "127.0.0.1", Host: "127.0.0.1", Port: port, Password: password}
	}
	nproxytest.Serve(t,
		nproxy.New(in, &tcp.Out{}),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: good}, out(testPassword, echo)),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: wrong}, out("wrong", echo)),
		nproxy.New(&tcp.In{Host: "127.0.0.1", Port: refused}, out(testPassword, echo+1)),
	)
	nproxytest.WaitListening(t, good)
	nproxytest.EchoThrough(t, good, 1<<20, false, 60*time.Second)

	expectEnd(t, wrong)
	if in.Stats.AuthFailed.Load() != 1 {
		t.Errorf("AuthFailed = %d after a wrong password, want 1", in.Stats.AuthFailed.Load())
	}
	expectEnd(t, refused)
	if in.Stats.Refused.Load() != 1 {
		t.Errorf("Refused = %d after a destination outside allow, want 1", in.Stats.Refused.Load())
	}
}

// expectEnd connects to port and expects the tunnel behind it to be closed
// by the far side within a few seconds. The far side may refuse before the
// client's connect has even returned: nproxy then closes a connection still
// in the client's accept path, and Linux reports the FIN-then-RST as EPIPE
// (or ECONNRESET) from connect itself. That is an end too.
func expectEnd(t *testing.T, port int) {
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [16]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Fatalf("port %d: read %q through a tunnel that should have closed", port, b[:n])
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("port %d: the tunnel was not closed", port)
	}
}
