package dual

import (
	"bufio"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// TestDual is Net::Proxy's dual scenario: a silent client reaches the
// server-first service after the timeout and that server speaks first; a
// client that speaks at once reaches the client-first service with its
// first line; lines go both ways; closes propagate; Mainloop(2) returns.
// Unlike 0.12, the talking client is served while the silent one waits.
func TestDual(t *testing.T) {
	a := newBackend(t, "A", nil)
	b := newBackend(t, "B", nil)
	const timeout = 500 * time.Millisecond
	r := startDual(t, &In{Timeout: timeout, ServerFirst: a.out(), ClientFirst: b.out()}, 2)

	silent := r.dial(t)
	start := time.Now()
	talker := r.dial(t)
	if _, err := talker.Write([]byte("zlonk\n")); err != nil {
		t.Fatal(err)
	}
	bc := b.next(t)
	br, tr := bufio.NewReader(bc), bufio.NewReader(talker)
	if got := readLine(t, br); got != "zlonk" {
		t.Fatalf("B got %q first, want the line sent before B existed", got)
	}
	bc.Write([]byte("bam\n"))
	if got := readLine(t, tr); got != "bam" {
		t.Fatalf("talker got %q", got)
	}
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("the talking client took %v while a silent one waited (timeout %v)", d, timeout)
	}

	ac := a.next(t)
	if d := time.Since(start); d < timeout-50*time.Millisecond {
		t.Errorf("the silent client reached A after %v, before the %v timeout", d, timeout)
	}
	ac.Write([]byte("A speaks first\n"))
	ar, sr := bufio.NewReader(ac), bufio.NewReader(silent)
	if got := readLine(t, sr); got != "A speaks first" {
		t.Fatalf("silent client got %q", got)
	}
	silent.Write([]byte("crunch\n"))
	if got := readLine(t, ar); got != "crunch" {
		t.Fatalf("A got %q", got)
	}
	a.none(t)
	b.none(t)

	// Closes propagate both ways: the client's on one route, the server's
	// on the other. Each end then closes too, since nproxy half-closes.
	talker.Close()
	nproxytest.ExpectEOF(t, bc, 5*time.Second)
	bc.Close()
	ac.Close()
	nproxytest.ExpectEOF(t, silent, 5*time.Second)
	silent.Close()
	r.Wait(t, 5*time.Second)
	if r.proxy.Opened() != 2 || r.proxy.Closed() != 2 {
		t.Errorf("opened %d closed %d, want 2 and 2", r.proxy.Opened(), r.proxy.Closed())
	}
}

// TestHookDual is Net::Proxy's hook_dual scenario: the dual connector's hook
// rewrites client data on both routes, the first line included; the
// client_first connector's hook rewrites its server's data; server_first
// has no hook.
func TestHookDual(t *testing.T) {
	hook := func(word string) loop.Hook {
		re := regexp.MustCompile(`\bz\w+`)
		return func(data []byte, _ *loop.Socket) []byte { return re.ReplaceAll(data, []byte(word)) }
	}
	a := newBackend(t, "A", nil)
	b := newBackend(t, "B", nil)
	clientFirst := b.out()
	clientFirst.Hook = hook("zlonk")
	r := startDual(t, &In{Timeout: 300 * time.Millisecond, ServerFirst: a.out(), ClientFirst: clientFirst, Hook: hook("zowie")}, 2)

	talker := r.dial(t)
	talker.Write([]byte("zlonk zok zapeth crunch_eth crraack\n"))
	bc := b.next(t)
	br, tr := bufio.NewReader(bc), bufio.NewReader(talker)
	if got := readLine(t, br); got != "zowie zowie zowie crunch_eth crraack" {
		t.Errorf("B got %q: the dual hook must see the first line", got)
	}
	talker.Write([]byte("zap bam\n"))
	if got := readLine(t, br); got != "zowie bam" {
		t.Errorf("B got %q", got)
	}
	bc.Write([]byte("zok zlurp bam\n"))
	if got := readLine(t, tr); got != "zlonk zlonk bam" {
		t.Errorf("talker got %q: client_first's hook must see B's data", got)
	}

	silent := r.dial(t)
	ac := a.next(t)
	ar, sr := bufio.NewReader(ac), bufio.NewReader(silent)
	ac.Write([]byte("zorglub here\n"))
	if got := readLine(t, sr); got != "zorglub here" {
		t.Errorf("silent client got %q: server_first has no hook", got)
	}
	silent.Write([]byte("zlonk crunch\n"))
	if got := readLine(t, ar); got != "zowie crunch" {
		t.Errorf("A got %q: the dual hook sees client data on this route too", got)
	}
	talker.Close()
	silent.Close()
	nproxytest.ExpectEOF(t, bc, 5*time.Second)
	nproxytest.ExpectEOF(t, ac, 5*time.Second)
	bc.Close()
	ac.Close()
	r.Wait(t, 5*time.Second)
}

// TestSilentCrowd holds 1,000 silent clients in their timeout while a
// client-first client connects, exchanges data and closes, several times:
// its round trips must not wait for them. Then every silent client must
// reach the server-first service and be greeted.
func TestSilentCrowd(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	const crowd = 1000
	const timeout = 1500 * time.Millisecond
	a := newBackend(t, "A", bannerEcho)
	b := newBackend(t, "B", echo)
	r := startDual(t, &In{Timeout: timeout, ServerFirst: a.out(), ClientFirst: b.out()}, 0)

	start := time.Now()
	silent := make([]*net.TCPConn, crowd)
	for i := range silent {
		silent[i] = r.dial(t)
	}
	var worst time.Duration
	for i := 0; i < 20 && time.Since(start) < timeout-300*time.Millisecond; i++ {
		t0 := time.Now()
		c := r.dial(t)
		c.Write([]byte("ping\n"))
		if got := readLine(t, bufio.NewReader(c)); got != "ping" {
			t.Fatalf("client-first got %q", got)
		}
		c.Close()
		worst = max(worst, time.Since(t0))
	}
	t.Logf("%d silent clients connected in %v; worst client-first round trip %v", crowd, time.Since(start), worst)
	if worst > 200*time.Millisecond {
		t.Errorf("a client-first round trip took %v while %d clients waited", worst, crowd)
	}
	if time.Since(start) >= timeout {
		t.Fatalf("setup took longer than the timeout; the test proves nothing")
	}
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got := readLine(t, bufio.NewReader(c)); got != "A ready" {
			t.Fatalf("silent client %d got %q", i, got)
		}
	}
	t.Logf("all greeted by A %v after the first connected", time.Since(start))
}

// TestBackendDown is Net::Proxy's tcp_fail through dual: when the chosen
// server refuses, on either route, the client sees EOF promptly and the
// connection counts as opened and closed.
func TestBackendDown(t *testing.T) {
	refused := func() *tcp.Out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return &tcp.Out{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port}
	}
	serverFirst, clientFirst := refused(), refused()
	r := startDual(t, &In{Timeout: 200 * time.Millisecond, ServerFirst: serverFirst, ClientFirst: clientFirst}, 2)
	talker := r.dial(t)
	talker.Write([]byte("zlonk\n"))
	silent := r.dial(t)
	nproxytest.ExpectEOF(t, talker, 2*time.Second)
	nproxytest.ExpectEOF(t, silent, 2*time.Second)
	r.Wait(t, 5*time.Second)
	if r.proxy.Opened() != 2 || r.proxy.Closed() != 2 {
		t.Errorf("opened %d closed %d, want 2 and 2", r.proxy.Opened(), r.proxy.Closed())
	}
	// One warning per refusing backend (a burst of refusals from one is
	// summarized); the two closed listeners may have had the same port.
	backends := 2
	if serverFirst.Port == clientFirst.Port {
		backends = 1
	}
	if log := r.logs.String(); strings.Count(log, "connection refused") != backends {
		t.Errorf("want %d refusals in the log:\n%s", backends, log)
	}
}
