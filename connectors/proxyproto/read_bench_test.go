package proxyproto_test

import (
	"net"
	"testing"

	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
	pp "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// BenchmarkReadHeader is what reading a PROXY header adds to each
// connection on the loop, from the accept function to the one that
// follows: the check of proxy_protocol_from, the deadline, a peek, a read,
// go-proxyproto's parse and the addresses set. Each round, a client writes
// its header and first bytes, the accept function runs, and the first
// bytes are read (as the relay would); "none" is the same without a
// header, so that v1 - none is the header's cost, to compare with the
// relay's CPU per connection (the bench's proxyproto-rate scenario, tens of
// µs).
func BenchmarkReadHeader(b *testing.B) {
	for _, version := range []string{"none", "v1", "v2"} {
		b.Run(version, func(b *testing.B) {
			l, err := loop.New(loop.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Discard()
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(fds[1])
			s, _ := l.Adopt(fds[0], nil)
			got := 0
			accept := loop.AcceptFunc(func(*loop.Socket) { got++ })
			first := []byte("GET / HTTP/1.0\r\n\r\n")
			if version != "none" {
				// The socket is reused: from the second header on, its peer
				// is the address the previous one carried, which the check
				// finds in the second range (a unix peer is allowed anyway).
				a := &proxyproto.Accept{ProxyProtocol: version, ProxyProtocolFrom: []string{"10.0.0.0/8", "192.0.2.0/24"}}
				if accept, err = a.Wrap(accept); err != nil {
					b.Fatal(err)
				}
				first = append(header(b, version), first...)
			}
			rest := make([]byte, 64)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				unix.Write(fds[1], first)
				accept(s)
				if n, _ := unix.Read(fds[0], rest); n != len("GET / HTTP/1.0\r\n\r\n") {
					b.Fatalf("round %d: the relay would read %d bytes", i, n)
				}
			}
			if got != b.N {
				b.Fatalf("%d of %d headers read", got, b.N)
			}
		})
	}
}

func header(b *testing.B, version string) []byte {
	h := pp.HeaderProxyFromAddrs(version[1]-'0', &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242},
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	header, err := h.Format()
	if err != nil {
		b.Fatal(err)
	}
	return header
}
