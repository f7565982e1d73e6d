package connect

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"

	"github.com/nproxy/nproxy"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// tunnels starts Mainloop(max) with one tcp-in proxy per out, each on a
// free 127.0.0.1 port, and returns those ports, the log and the run.
func tunnels(t *testing.T, max int, outs ...*Out) ([]int, *nproxytest.LogBuffer, *nproxytest.Run) {
	t.Helper()
	logs := nproxytest.CaptureLog(t, 0)
	var ports []int
	var proxies []*nproxy.Proxy
	for _, out := range outs {
		port := nproxytest.FreePort(t)
		ports = append(ports, port)
		proxies = append(proxies, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	}
	return ports, logs, nproxytest.Start(t, max, proxies...)
}

// echoCheck sends n random bytes through c while reading back the ct.Banner
// followed by those bytes. With halfClose it then shuts its write side and
// expects EOF after the echo; without, it reads exactly the echo, for
// tinyproxy, which tears the tunnel down at the client's EOF.
func echoCheck(t *testing.T, c *net.TCPConn, n int, halfClose bool) {
	t.Helper()
	payload := make([]byte, n)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		// random chunk sizes, so that segment boundaries vary
		for p := payload; len(p) > 0; {
			k := min(len(p), 1+rand.Intn(64<<10))
			if _, err := c.Write(p[:k]); err != nil {
				errc <- err
				return
			}
			p = p[k:]
		}
		if halfClose {
			errc <- c.CloseWrite()
			return
		}
		errc <- nil
	}()
	var got []byte
	var err error
	if halfClose {
		got, err = io.ReadAll(c)
	} else {
		got = make([]byte, len(ct.Banner)+n)
		_, err = io.ReadFull(c, got)
	}
	if err != nil {
		t.Fatalf("reading through the tunnel: %v after %d bytes", err, len(got))
	}
	if werr := <-errc; werr != nil {
		t.Fatalf("writing through the tunnel: %v", werr)
	}
	want := append([]byte(ct.Banner), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d (ct.Banner first, then the echo); first difference at %d",
			len(got), len(want), nproxytest.FirstDiff(got, want))
	}
}
