package connectors_test

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// TestPreambleHold: with Hold, a socket whose exchange ended while it was
// watched is handed over still in the readers list (no epoll_ctl); what it
// reports before anyone takes it over (early data, then a reset) takes it
// out of the list, leaves the data unread for the relay, and closes it.
// Without Hold it is handed over out of the list.
func TestPreambleHold(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{false: "without", true: "with"}[hold], func(t *testing.T) {
			t.Parallel()
			l, err := loop.New(loop.Config{})
			if err != nil {
				t.Fatal(err)
			}
			go l.Run()
			t.Cleanup(l.Stop)
			handed := make(chan *loop.Socket, 1)
			// The exchange: "a", answered "ok"; then "b" ends it.
			pre := &connectors.Preamble{Limit: 64, Timeout: 10 * time.Second, Hold: hold,
				Step: func(s *loop.Socket, data []byte) (int, bool, error) {
					switch {
					case len(data) == 0:
						return 0, false, nil
					case data[0] == 'a':
						return 1, false, connectors.WriteAll(s, []byte("ok"))
					}
					return 1, true, nil
				},
				Done: func(s *loop.Socket) { handed <- s },
				Fail: func(s *loop.Socket, err error) { t.Errorf("exchange failed: %v", err); s.Loop().Close(s) },
			}
			port := nproxytest.FreePort(t)
			listening := make(chan error, 1)
			l.Post(func() {
				_, err := l.Listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), pre.Start)
				listening <- err
			})
			if err := <-listening; err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var ok [2]byte
			if _, err := c.Write([]byte("a")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, ok[:]); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("b")); err != nil { // read on an event: the socket is watched
				t.Fatal(err)
			}
			s := <-handed
			nproxytest.AwaitOnLoop(t, l, "handed over", func() bool { return s.Reading() == hold })
			if !hold {
				return
			}
			if _, err := c.Write([]byte("early")); err != nil {
				t.Fatal(err)
			}
			nproxytest.AwaitOnLoop(t, l, "out of the readers list at the first event", func() bool { return !s.Reading() })
			if n := nproxytest.Unread(s.Fd()); n != len("early") {
				t.Errorf("%d bytes left unread, want %d", n, len("early"))
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			nproxytest.AwaitOnLoop(t, l, "closed on the reset", s.Closed)
		})
	}
}
