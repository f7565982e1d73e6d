package httptunnel

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// nproxy as htc, GNU hts, an echo server: 10 MiB each way, byte-exact.
func TestOutToGNUHTS(t *testing.T) {
	hts := gnuHTS(t, echo(t))
	in := entry(t)
	start(t, nproxy.New(in, &Out{Host: "127.0.0.1", Port: hts}))
	exchange(t, in.Port, 10*mb)
}

// GNU htc, nproxy as hts, an echo server.
func TestGNUHTCToIn(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t)}
	start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}))
	exchange(t, gnuHTC(t, in.Port), 10*mb)
}

// nproxy as htc through tinyproxy, which forwards ordinary requests only,
// to GNU hts.
func TestOutThroughTinyproxy(t *testing.T) {
	hts := gnuHTS(t, echo(t))
	in := entry(t)
	start(t, nproxy.New(in, &Out{Host: "127.0.0.1", Port: hts, ProxyHost: "127.0.0.1", ProxyPort: tinyproxy(t)}))
	exchange(t, in.Port, 10*mb)
}

// GNU htc through tinyproxy (htc --proxy) to nproxy as hts. htc's POST
// bodies are made longer than the test's data: htc opens its next POST as
// soon as it has written the last one, and a proxy in between may deliver
// the two out of order, which the protocol cannot tell (GNU hts loses data
// then too; docs/httptunnel.md). The GET side rotates every 100 KiB.
func TestGNUHTCThroughTinyproxyToIn(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t)}
	start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}))
	exchange(t, gnuHTC(t, in.Port, "-c", "32M", "-P", "127.0.0.1:"+strconv.Itoa(tinyproxy(t))), 10*mb)
}

// haproxy send-proxy in front of nproxy as hts (proxy_protocol=v1): the
// client's address comes from the header (haproxy connects from
// 127.0.0.5, the client from 127.0.0.1), requests are paired by it, and the
// tunnel's client is it for send_proxy downstream. Over request pairs and
// over a mux session.
func TestInBehindHaproxySendProxy(t *testing.T) {
	for name, opts := range map[string]Options{"pairs": {}, "mux": {Mux: true, Key: "k"}} {
		t.Run(name, func(t *testing.T) {
			port, hport := nproxytest.FreePort(t), nproxytest.FreePort(t)
			in := &In{Host: "127.0.0.1", Port: port, Options: opts,
				Accept: proxyproto.Accept{ProxyProtocol: "v1", ProxyProtocolFrom: []string{"127.0.0.5"}}}
			entry := entry(t)
			start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: headerEcho(t), Send: proxyproto.Send{SendProxy: "v1"}}),
				nproxy.New(entry, &Out{Host: "127.0.0.1", Port: hport, Options: opts}))
			haproxy(t, hport, fmt.Sprintf("listen l\n\tbind 127.0.0.1:%d\n\tserver s 127.0.0.1:%d send-proxy source 127.0.0.5\n", hport, port))
			c, want, _ := sending(t, entry.Port, mb, 10*time.Second)
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if !strings.HasPrefix(line, "PROXY TCP4 127.0.0.1 ") {
				t.Fatalf("the server got %q (%v), not the client's address", line, err)
			}
			got := make([]byte, len(want))
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("echo: %v, or different bytes", err)
			}
		})
	}
}
