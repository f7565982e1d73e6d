package httptunnel

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/ssl"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// tlsVariants are the tunnels TLS goes under: GNU-style request pairs, a
// mux session over request pairs (short bodies: many reconnections), and
// a mux session over one WebSocket.
var tlsVariants = []struct {
	name string
	opts Options
	ws   bool
}{
	{"pairs", Options{ContentLength: 100000}, false},
	{"mux", Options{Mux: true, Key: "k", ContentLength: 100000}, false},
	{"websocket", Options{Mux: true, Key: "k", ContentLength: 100000}, true},
}

// tlsOut is an out side that verifies the server against certs' CA.
func tlsOut(certs *ssltest.Certs) TLS {
	return TLS{SSL: true, Params: ssl.Params{CAFile: certs.CA, VerifyMode: 1}}
}

func tlsIn(certs *ssltest.Certs) TLS {
	return TLS{SSL: true, Params: ssl.Params{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}}
}

// nproxy to nproxy, TLS on both ends: 4 MiB each way, byte-exact, and
// half-close.
func TestTLSPair(t *testing.T) {
	certs := ssltest.New(t)
	for _, v := range tlsVariants {
		t.Run(v.name, func(t *testing.T) {
			out := &Out{Options: v.opts, TLS: tlsOut(certs), WebSocket: v.ws}
			port := pair(t, out, &In{Options: v.opts, TLS: tlsIn(certs)})
			exchange(t, port, 4*mb)
			if v.ws {
				overTLSWebSocket(t, out)
			}
		})
	}
}

// serverPEM writes the server's certificate and key to one file, as
// haproxy's crt wants them.
func serverPEM(t *testing.T, certs *ssltest.Certs) string {
	pem := filepath.Join(t.TempDir(), "server.pem")
	cert, _ := os.ReadFile(certs.ServerCert)
	key, _ := os.ReadFile(certs.ServerKey)
	if err := os.WriteFile(pem, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	return pem
}

// Real TLS peers: haproxy terminates the out side's TLS in front of a
// plain in, and makes TLS to an in with ssl=1 for a plain out.
func TestTLSWithHaproxy(t *testing.T) {
	certs := ssltest.New(t)
	pem := serverPEM(t, certs)
	for _, v := range tlsVariants {
		t.Run("terminated/"+v.name, func(t *testing.T) {
			in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: v.opts}
			hport := nproxytest.FreePort(t)
			e := entry(t)
			start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}),
				nproxy.New(e, &Out{Host: "127.0.0.1", Port: hport, Options: v.opts, TLS: tlsOut(certs), WebSocket: v.ws}))
			haproxy(t, hport, fmt.Sprintf("listen l\n\tbind 127.0.0.1:%d ssl crt %s\n\tserver s 127.0.0.1:%d\n", hport, pem, in.Port))
			exchange(t, e.Port, 2*mb)
		})
		t.Run("originated/"+v.name, func(t *testing.T) {
			in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: v.opts, TLS: tlsIn(certs)}
			hport := nproxytest.FreePort(t)
			e := entry(t)
			start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}),
				nproxy.New(e, &Out{Host: "127.0.0.1", Port: hport, Options: v.opts, WebSocket: v.ws}))
			haproxy(t, hport, fmt.Sprintf("listen l\n\tbind 127.0.0.1:%d\n\tserver s 127.0.0.1:%d ssl verify required ca-file %s\n", hport, in.Port, certs.CA))
			exchange(t, e.Port, 2*mb)
		})
	}
}

// A server whose certificate the out side cannot verify: one log line on
// each side, and the client's connection is closed.
func TestTLSUnverifiedServer(t *testing.T) {
	certs := ssltest.New(t)
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: Options{Mux: true, Key: "k"},
		TLS: TLS{SSL: true, Params: ssl.Params{CertFile: certs.OtherCert, KeyFile: certs.OtherKey}}}
	e := entry(t)
	logs := start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}),
		nproxy.New(e, &Out{Host: "127.0.0.1", Port: in.Port, Options: Options{Mux: true, Key: "k"}, TLS: tlsOut(certs)}))
	refused(t, e.Port, "x")
	log := logs.WaitFor(t, "httptunnel to 127.0.0.1", "certificate signed by unknown authority", "httptunnel in: TLS with")
	if n := strings.Count(log, "certificate signed by unknown authority"); n != 1 {
		t.Fatalf("the client logged its failure %d times", n)
	}
}

// 100 streams over one WebSocket under TLS, one of them never read: the
// other 99 exchange byte-exact (manyOverOne); then an exact half-close.
func TestTLSWebSocket(t *testing.T) {
	certs := ssltest.New(t)
	out := &Out{TLS: tlsOut(certs), WebSocket: true}
	opts := Options{Mux: true, Key: "sesame", ContentLength: 64 << 10}
	out.Options = opts
	port := pair(t, out, &In{Options: opts, TLS: tlsIn(certs)})
	manyOverOne(t, port, out)
	halfClose(t, port)
	overTLSWebSocket(t, out)
}

// overTLSWebSocket checks that out's sessions run on WebSockets under TLS,
// not on request pairs the client fell back to.
func overTLSWebSocket(t *testing.T, out *Out) {
	t.Helper()
	for _, tr := range sessionTransports(t, out) {
		if w, ok := tr.(*wsConn); !ok || w.under == nil {
			t.Fatalf("session over %T, not a WebSocket under TLS", tr)
		}
	}
}

// sessionTransports returns the transports out's sessions run on, read on
// their loops (which own them).
func sessionTransports(t *testing.T, out *Out) []loop.Transport {
	t.Helper()
	out.mu.Lock()
	sessions := slices.Collect(maps.Values(out.sessions))
	out.mu.Unlock()
	if len(sessions) == 0 {
		t.Fatal("no session")
	}
	var trs []loop.Transport
	for _, m := range sessions {
		ch := make(chan loop.Transport, 1)
		m.l.Post(func() { ch <- m.vs.Transport() })
		trs = append(trs, <-ch)
	}
	return trs
}

// A path that refuses upgrades (haproxy terminating TLS and denying
// WebSocket): the client falls back to request pairs under TLS.
func TestTLSWebSocketFallsBack(t *testing.T) {
	certs := ssltest.New(t)
	pem := serverPEM(t, certs)
	opts := Options{Mux: true, Key: "k"}
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: opts}
	hport := nproxytest.FreePort(t)
	e := entry(t)
	out := &Out{Host: "127.0.0.1", Port: hport, WebSocket: true, Options: opts, TLS: tlsOut(certs)}
	start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}), nproxy.New(e, out))
	haproxy(t, hport, fmt.Sprintf("listen l\n\tmode http\n\tbind 127.0.0.1:%d ssl crt %s\n\thttp-request deny if { hdr(upgrade) -i websocket }\n\tserver s 127.0.0.1:%d\n", hport, pem, in.Port))
	exchange(t, e.Port, mb)
	for _, tr := range sessionTransports(t, out) {
		if _, ok := tr.(*tunnel); !ok {
			t.Fatalf("session over %T, not request pairs", tr)
		}
	}
}
