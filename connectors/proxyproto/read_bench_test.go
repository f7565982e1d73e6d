package proxyproto_test

import (
	"bufio"
	"bytes"
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
			rig := newReadRig(b, version)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				rig.round()
			}
			rig.check(b.N)
		})
	}
}

// TestHeaderAllocatesOnlyTheParse guards the header's cost on the loop: a
// header whole at accept allocates what go-proxyproto's parse allocates (7
// times for a v1 TCP4 line, all in its parser) and nothing more: the
// reader it parses from and the peek buffer are pooled, and no handler,
// timer or copy of the bytes is made unless the client makes the loop
// wait. Without the pools it is 11 allocations.
func TestHeaderAllocatesOnlyTheParse(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race, sync.Pool drops a quarter of what it is given: pooled buffers are allocated again at random")
	}
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			rig := newReadRig(t, version)
			rig.round() // the socket's slot for the addresses is made once, as for any client
			got := testing.AllocsPerRun(200, rig.round)
			rig.check(1 + 1 + 200) // the round above, AllocsPerRun's warm-up, its runs
			h := header(t, version)
			var in bytes.Reader
			r := bufio.NewReaderSize(&in, proxyproto.MaxV2Header)
			parse := testing.AllocsPerRun(200, func() {
				in.Reset(h)
				r.Reset(&in)
				if _, err := pp.Read(r); err != nil {
					t.Fatal(err)
				}
			})
			if got > parse {
				t.Errorf("reading a %s header allocates %v times per client; go-proxyproto's parse alone, %v", version, got, parse)
			}
		})
	}
}

// readRig is a client socket on a loop that is not running, and the accept
// function of a listener expecting version ("none": no header); round has
// the client send its header and first bytes, accepts, and reads what the
// relay would.
type readRig struct {
	tb       testing.TB
	fds      [2]int
	s        *loop.Socket
	accept   loop.AcceptFunc
	accepted int
	first    []byte
	rest     []byte
}

const firstBytes = "GET / HTTP/1.0\r\n\r\n"

func newReadRig(tb testing.TB, version string) *readRig {
	l, err := loop.New(loop.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Discard)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fds[1]) })
	rig := &readRig{tb: tb, fds: [2]int{fds[0], fds[1]}, first: []byte(firstBytes), rest: make([]byte, 64)}
	rig.s, _ = l.Adopt(fds[0], nil)
	rig.accept = func(*loop.Socket) { rig.accepted++ }
	if version != "none" {
		// The socket is reused: from the second header on, its peer
		// is the address the previous one carried, which the check
		// finds in the second range (a unix peer is allowed anyway).
		a := &proxyproto.Accept{ProxyProtocol: version, ProxyProtocolFrom: []string{"10.0.0.0/8", "192.0.2.0/24"}}
		if rig.accept, err = a.Wrap(rig.accept); err != nil {
			tb.Fatal(err)
		}
		rig.first = append(header(tb, version), rig.first...)
	}
	return rig
}

func (r *readRig) round() {
	unix.Write(r.fds[1], r.first)
	r.accept(r.s)
	if n, _ := unix.Read(r.fds[0], r.rest); n != len(firstBytes) {
		r.tb.Fatalf("after %d clients, the relay would read %d bytes", r.accepted, n)
	}
}

func (r *readRig) check(rounds int) {
	if r.accepted != rounds {
		r.tb.Fatalf("%d of %d headers read", r.accepted, rounds)
	}
}

func header(tb testing.TB, version string) []byte {
	h := pp.HeaderProxyFromAddrs(version[1]-'0', &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242},
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	header, err := h.Format()
	if err != nil {
		tb.Fatal(err)
	}
	return header
}
