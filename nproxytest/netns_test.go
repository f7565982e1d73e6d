package nproxytest_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/nproxy/nproxy/nproxytest"
)

// A namespace from NewNetns has its own loopback, up: a socket made in it
// by Do connects there, and the host's loopback does not see its listener.
func TestNetns(t *testing.T) {
	t.Parallel()
	ns := nproxytest.NewNetns(t, "self")
	port := nproxytest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if nproxytest.Listening(port) {
		t.Errorf("a listener in %s is seen on the host's loopback", ns)
	}
	dial := func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := ns.Do(dial); err != nil {
		t.Errorf("connecting inside %s: %v", ns, err)
	}
	if !fails(t, func(tb testing.TB) { ns.Run(tb, "false") }) {
		t.Error("Run passed on a program that failed")
	}
}
