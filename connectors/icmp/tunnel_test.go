package icmp

import (
	"strconv"
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

	nproxytest.DialClosed(t, wrong, []byte("hello"), 10*time.Second)
	if in.Stats.AuthFailed.Load() != 1 {
		t.Errorf("AuthFailed = %d after a wrong password, want 1", in.Stats.AuthFailed.Load())
	}
	nproxytest.DialClosed(t, refused, []byte("hello"), 10*time.Second)
	if in.Stats.Refused.Load() != 1 {
		t.Errorf("Refused = %d after a destination outside allow, want 1", in.Stats.Refused.Load())
	}
}
