package dual

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// A busy loop runs timers late: a client accepted in a pass may see its
// timer expire at the end of that same pass, before the loop ever polled
// it, although its bytes arrived in time. It spoke, so it goes to
// client_first. Here a hook holds the loop while the client connects and
// speaks, and a 1 µs timeout expires in the pass that accepts it.
func TestLateTimerSeesWaitingBytes(t *testing.T) {
	silent, talker := newBackend(t, "server_first", nil), newBackend(t, "client_first", nil)
	blocker := newBackend(t, "blocker", echo)
	held := make(chan struct{})
	var once sync.Once
	hold := &tcp.In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Hook: func(data []byte, _ *loop.Socket) []byte {
		once.Do(func() {
			close(held)
			time.Sleep(300 * time.Millisecond) // the loop is busy elsewhere
		})
		return data
	}}
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Timeout: time.Microsecond, ServerFirst: silent.out(), ClientFirst: talker.out()}
	nproxytest.CaptureLog(t, 3)
	nproxytest.Start(t, 0, nproxy.New(in, dummy.Connector{}), nproxy.New(hold, blocker.out()))

	dial := func(port int) net.Conn {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	dial(hold.Port).Write([]byte("x"))
	<-held
	dial(in.Port).Write([]byte("zlonk\n"))
	if got := readLine(t, bufio.NewReader(talker.next(t))); got != "zlonk" {
		t.Fatalf("client_first got %q", got)
	}
	silent.none(t)
}
