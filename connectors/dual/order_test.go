package dual

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
	"go.yaml.in/yaml/v3"
)

// fillingOut connects to a backend that reads nothing until the end, and
// fills the socket before handing it to the relay: the bytes dual read
// while deciding then wait in the relay's queue.
type fillingOut struct {
	t         *testing.T
	port      int
	connected chan *filledPair
}

type filledPair struct {
	l              *loop.Loop
	client, server *loop.Socket
	filler         []byte
}

func (o *fillingOut) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	l.Dial("127.0.0.1", o.port, 0, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		o.connected <- &filledPair{l: l, client: client, server: server, filler: nproxytest.FillSocket(o.t, server.Fd())}
		h.Connected(l, client, server)
	})
}

// The bytes dual read before it chose the server (early client data for
// client_first, probe bytes for a probe's route) wait for the server while
// its socket is full; what the client sends next must not be spliced past
// them (loop's canSplice guard).
func TestDecidingBytesAreNotOvertaken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []byte
		probe bool
	}{
		{"early client data", bytes.Repeat([]byte("early..."), 1000), false},
		{"probe bytes", []byte("SSH-2.0-OpenSSH_9.2p1 nproxy-test\r\n"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := nproxytest.Listener(t)
			out := &fillingOut{t: t, port: ln.Addr().(*net.TCPAddr).Port, connected: make(chan *filledPair, 1)}
			in := &In{Timeout: 10 * time.Second, ServerFirst: out, ClientFirst: out}
			if tc.probe {
				in.Routes = []Route{{Probe: SSH{}, Out: out}}
			}
			r := startDual(t, in, 0)
			client := r.dial(t)
			if _, err := client.Write(tc.first); err != nil {
				t.Fatal(err)
			}
			p := <-out.connected
			backend, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer backend.Close()
			nproxytest.AwaitOnLoop(t, p.l, "the deciding bytes to wait for the server", func() bool {
				return p.server.Peer != nil && p.server.Pending() >= len(tc.first)
			})
			later := bytes.Repeat([]byte("later..."), 2048)
			if _, err := client.Write(later); err != nil {
				t.Fatal(err)
			}
			nproxytest.AwaitOnLoop(t, p.l, "the relay to read what the client sent next", func() bool {
				return p.server.Pending() >= len(tc.first)+len(later)
			})
			want := append(append(append([]byte{}, p.filler...), tc.first...), later...)
			got := make([]byte, len(want))
			backend.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(backend, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				t.Fatalf("byte %d of %d differs: got %q, want %q (spliced bytes overtook the stashed ones)",
					i, len(want), got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
			}
		})
	}
}

// A pair dual routed, by the timeout or by a probe, is plain TCP from then
// on: the relay splices it, as the splice counter proves.
func TestRoutedPairIsSpliced(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first string
		probe bool
	}{{"client_first", "hello\n", false}, {"probe", "SSH-2.0-OpenSSH_9.2p1 x\r\n", true}, {"server_first", "", false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, "B", echo)
			in := &In{Timeout: 100 * time.Millisecond, ServerFirst: b.out(), ClientFirst: b.out()}
			if tc.probe {
				in.Routes = []Route{{Probe: SSH{}, Out: b.out()}}
			}
			r := startDual(t, in, 1)
			c := r.dial(t)
			before := nproxy.SplicedBytes()
			data := bytes.Repeat([]byte("spliced."), 32<<10)
			if tc.first == "" {
				r.logs.WaitFor(t, "goes to server_first (timeout)")
			}
			go func() {
				c.Write([]byte(tc.first))
				c.Write(data)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, append([]byte(tc.first), data...)) {
				t.Fatalf("echo: %d bytes, %v; want %d", len(got), err, len(tc.first)+len(data))
			}
			r.Wait(t, 5*time.Second)
			// Both directions, less what dual read while deciding.
			if spliced := nproxy.SplicedBytes() - before; spliced < uint64(2*(len(data)-len(data)/8)-2*readSize) { // and the reads before a stream shows (copied)
				t.Errorf("%d bytes spliced of %d relayed", spliced, 2*len(data))
			}
		})
	}
}

// FuzzProbeSpecs feeds the probes parameter, as YAML gives it, to Build:
// routes that each have a probe and a server, or one short error line.
func FuzzProbeSpecs(f *testing.F) {
	for _, seed := range []string{
		"[{type: ssh, out: server_first}]",
		"[{type: tls, sni: ['*.example.com', x], alpn: [h2], out: {type: tcp, host: '[::1]', port: 1}}]",
		"[{type: http, host: [a], out: client_first}, {type: regex, pattern: '^GET', min: 3, out: server_first}, {type: any, out: server_first}]",
		"[{type: regex, pattern: '(', out: server_first}]", "[{type: zlonk}]", "{0: {type: ssh, out: server_first}}", "[[1]]", "x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var probes any
		if yaml.Unmarshal([]byte(doc), &probes) != nil {
			return
		}
		c, err := connectors.BuildIn("in", map[string]any{"type": "dual", "port": 1, "probes": probes,
			"server_first": map[string]any{"type": "tcp", "host": "a", "port": 2},
			"client_first": map[string]any{"type": "tcp", "host": "b", "port": 3}})
		if err != nil {
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 600 {
				t.Fatalf("error is not one short line: %q", err)
			}
			return
		}
		for _, r := range c.(*In).Routes {
			if r.Probe == nil || r.Out == nil {
				t.Fatalf("%q built a route without a probe or a server: %+v", doc, r)
			}
		}
	})
}
