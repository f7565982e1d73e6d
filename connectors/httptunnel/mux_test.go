package httptunnel

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// stalled opens a connection whose reader never reads, and keeps writing
// into it until the tunnel stops taking its data.
func stalled(t *testing.T, port int) net.Conn {
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		junk := make([]byte, 64<<10)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	return c
}

// manyOverOne runs 99 exchanges next to one stalled connection, all over
// one session, and checks every exchange finishes.
func manyOverOne(t *testing.T, port int, out *Out) {
	stalled(t, port)
	timer := time.AfterFunc(15*time.Second, func() { dumpSessions(t, out) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for i := 0; i < 99; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			exchange(t, port, 256<<10)
		}()
	}
	wg.Wait()
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(out.sessions))
	}
}

// muxPair is pair with mux on both ends.
func muxPair(t *testing.T, out *Out) int {
	out.Options = Options{Mux: true, Key: "sesame", ContentLength: 64 << 10}
	return pair(t, out, &In{Options: Options{Mux: true, Key: "sesame", ContentLength: 64 << 10}})
}

// 100 connections over one session; one never reads; the other 99 finish.
// The bodies are small, so the session outlives many HTTP requests.
func TestMuxStalledStreamStallsNoOther(t *testing.T) {
	out := &Out{}
	manyOverOne(t, muxPair(t, out), out)
}

// The same through tinyproxy, which forwards ordinary requests only.
func TestMuxThroughTinyproxy(t *testing.T) {
	out := &Out{ProxyHost: "127.0.0.1", ProxyPort: tinyproxy(t)}
	manyOverOne(t, muxPair(t, out), out)
}

// A mux client refuses GNU hts cleanly: hts drops the tunnel on the first
// frame, and the client's connection is closed with one log line.
func TestMuxRefusedByGNUHTS(t *testing.T) {
	hts := gnuHTS(t, echo(t))
	in := entry(t)
	logs := start(t, nproxy.New(in, &Out{Host: "127.0.0.1", Port: hts, Options: Options{Mux: true, Key: "k"}}))
	refused(t, in.Port, "hello")
	logs.WaitFor(t, "httptunnel mux session")
}

// A wrong key, GNU htc at a mux server, too many streams: one log line and
// a closed session.
func TestMuxBadClients(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: Options{Mux: true, Key: "right", MaxStreams: 20}}
	wrong, many := entry(t), entry(t)
	logs := start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}),
		nproxy.New(wrong, &Out{Host: "127.0.0.1", Port: in.Port, Options: Options{Mux: true, Key: "wrong"}}),
		nproxy.New(many, &Out{Host: "127.0.0.1", Port: in.Port, Options: Options{Mux: true, Key: "right"}}))

	refused(t, wrong.Port, "x")
	logs.WaitFor(t, "mux client with a wrong key")

	refused(t, gnuHTC(t, in.Port), "x")
	logs.WaitFor(t, "a GNU httptunnel client, but this end is mux=1")

	// 21 streams where 20 are allowed: the session ends, and every
	// stream with it.
	var wg sync.WaitGroup
	for i := 0; i < 21; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused(t, many.Port, "x")
		}()
	}
	wg.Wait()
	logs.WaitFor(t, "mux client opened more than 20 streams")
}

// The same over a WebSocket.
func TestMuxWebSocket(t *testing.T) {
	out := &Out{WebSocket: true}
	manyOverOne(t, muxPair(t, out), out)
	for _, tr := range sessionTransports(t, out) {
		if _, ok := tr.(*wsConn); !ok {
			t.Fatalf("session over %T, not a WebSocket", tr)
		}
	}
}

// A wrong key over a WebSocket: the server refuses the upgrade with one log
// line, and the client gives up at once, without falling back to request
// pairs (which would only be refused again), and closes its connection.
func TestMuxWebSocketWrongKey(t *testing.T) {
	in := &In{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Options: Options{Mux: true, Key: "right"}}
	wrong := entry(t)
	logs := start(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: echo(t)}),
		nproxy.New(wrong, &Out{Host: "127.0.0.1", Port: in.Port, WebSocket: true, Options: Options{Mux: true, Key: "wrong"}}))
	refused(t, wrong.Port, "x")
	log := logs.WaitFor(t, "httptunnel in: request from", "mux client with a wrong key", "refused the mux session")
	if n := strings.Count(log, "mux client with a wrong key"); n != 1 || strings.Contains(log, "using request pairs") {
		t.Fatalf("%d refusals logged by the server, or a fallback to request pairs:\n%s", n, log)
	}
}

// A reader that takes a stream's bytes in small pieces gets every one of
// them: credit goes back in batches (half a window), never so late that
// the sender waits for credit the reader will not give. The sizes end just
// before, at and after a batch and a window.
func TestMuxSlowReaderNeverStalls(t *testing.T) {
	t.Parallel()
	port := muxPair(t, &Out{})
	for _, size := range []int{muxWindowSize/2 - 1, muxWindowSize / 2, muxWindowSize + 1, 3*muxWindowSize + 12345} {
		slowExchange(t, port, size, 1000)
	}
}

// slowExchange is exchange with a reader that reads piece bytes at a time.
func slowExchange(t *testing.T, port, size, piece int) {
	t.Helper()
	c, want, _ := sending(t, port, size, 20*time.Second)
	got := make([]byte, 0, size)
	buf := make([]byte, piece)
	for len(got) < size {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("size %d: read %d bytes, then %v", size, len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("size %d: byte %d differs", size, nproxytest.FirstDiff(got, want))
	}
}
