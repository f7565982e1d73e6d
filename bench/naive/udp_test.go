package naive

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// TestServeUDP: two clients through the relay each get their own echo.
func TestServeUDP(t *testing.T) {
	echo := nproxytest.UDPEcho(t, "127.0.0.1")
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go ServeUDP(ln, net.JoinHostPort("127.0.0.1", strconv.Itoa(echo)))
	for _, msg := range []string{"one", "two"} {
		c, err := net.Dial("udp", ln.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("got %q, %v; want %q", buf[:n], err, msg)
		}
	}
}
