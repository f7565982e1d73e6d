package connect

import (
	"bufio"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/nproxytest"
)

func TestTinyproxyTunnel(t *testing.T) {
	up := ct.StartBannerServer(t)
	auth := ct.StartTinyproxy(t, true, up)
	open := ct.StartTinyproxy(t, false)
	withCreds := &Out{Host: "127.0.0.1", Port: up, ProxyHost: auth.Host, ProxyPort: auth.Port,
		ProxyUser: ct.User, ProxyPass: ct.Pass, ProxyAgent: "nproxy-test"}
	noCreds := &Out{Host: "localhost", Port: up, ProxyHost: open.Host, ProxyPort: open.Port}
	ports, _, _ := tunnels(t, 0, withCreds, noCreds)
	spliced := nproxy.SplicedBytes()
	const bulk = 8 << 20
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { echoCheck(t, nproxytest.Dial(t, ports[i%2]), bulk, false) })
	}
	wg.Wait()
	if got := nproxy.SplicedBytes() - spliced; got < 4*2*(bulk-bulk/8) { // the reads before a stream shows are copied
		t.Errorf("spliced %d bytes, want at least %d: the tunnel did not splice", got, 4*2*bulk)
	}
}

func TestTinyproxyRefusals(t *testing.T) {
	up := ct.StartBannerServer(t)
	tp := ct.StartTinyproxy(t, true, up)
	out := func(port int, user, pass string) *Out {
		return &Out{Host: "127.0.0.1", Port: port, ProxyHost: tp.Host, ProxyPort: tp.Port, ProxyUser: user, ProxyPass: pass}
	}
	ports, logs, _ := tunnels(t, 0, out(up, "", ""), out(up, ct.User, "wrong"), out(up+1, ct.User, ct.Pass))
	for i, status := range []string{
		"HTTP/1.0 407 Proxy Authentication Required",
		"HTTP/1.0 401 Unauthorized",
		"HTTP/1.1 403 Access violation",
	} {
		nproxytest.DialClosed(t, ports[i], nil, 5*time.Second)
		target := "CONNECT 127.0.0.1:" + strconv.Itoa(up)
		if i == 2 {
			target = "CONNECT 127.0.0.1:" + strconv.Itoa(up+1)
		}
		logs.WaitFor(t, target+" through web proxy "+tp.Addr()+": refused: "+status)
	}
	for i, p := range nproxy.DefaultServer.Proxies() {
		if n := p.Stats().HandshakeFailures[connectors.HandshakeCONNECT]; n != 1 {
			t.Errorf("proxy #%d: %d CONNECT handshake failures counted, want 1", i+1, n)
		}
	}
}

// TestSplitReply cuts the proxy's reply (and the ct.Banner after it) at every
// byte position, with a pause between the two writes.
func TestSplitReply(t *testing.T) {
	up := ct.StartBannerServer(t)
	reply := "HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\n"
	var mu sync.Mutex
	cut := 0
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		mu.Lock()
		k := cut
		mu.Unlock()
		server, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(up))
		if err != nil {
			return
		}
		defer server.Close()
		// The ct.Banner is read before the reply is sent, so it can be
		// glued to any part of the reply.
		b := make([]byte, len(ct.Banner))
		io.ReadFull(server, b)
		whole := reply + ct.Banner
		io.WriteString(c, whole[:k])
		time.Sleep(2 * time.Millisecond)
		io.WriteString(c, whole[k:])
		ct.SpliceHalfClose(c, server.(*net.TCPConn))
	})
	ports, _, _ := tunnels(t, 0, &Out{Host: "127.0.0.1", Port: up, ProxyHost: sp.Host, ProxyPort: sp.Port})
	for k := 0; k <= len(reply)+len(ct.Banner); k++ {
		mu.Lock()
		cut = k
		mu.Unlock()
		echoCheck(t, nproxytest.Dial(t, ports[0]), 1000, true)
	}
}

func TestTrickledReplyHitsDeadline(t *testing.T) {
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		reply := "HTTP/1.1 200 OK\r\nX-Slow: " + strings.Repeat("z", 200) + "\r\n\r\n"
		for i := range len(reply) {
			if _, err := c.Write([]byte{reply[i]}); err != nil {
				return
			}
			time.Sleep(30 * time.Millisecond) // the whole reply takes 6.5 s
		}
	})
	ports, logs, _ := tunnels(t, 0, &Out{Host: "zlonk", Port: 443, ProxyHost: sp.Host, ProxyPort: sp.Port, Timeout: 500 * time.Millisecond})
	start := time.Now()
	c := nproxytest.Dial(t, ports[0])
	nproxytest.ExpectClosed(t, c, 5*time.Second)
	if d := time.Since(start); d < 450*time.Millisecond || d > 3*time.Second {
		t.Errorf("client closed after %v, want about 500ms (a loaded machine may add some)", d)
	}
	logs.WaitFor(t, "CONNECT zlonk:443 through web proxy "+sp.Addr()+": reply incomplete after 500ms")
}

func TestMalformedReplies(t *testing.T) {
	cases := map[string]struct{ reply, want string }{
		"h20":    {"HTTP/2.0 200 OK\r\n\r\n", "not HTTP/1.x"},
		"h12":    {"HTTP/1.2 200 OK\r\n\r\n", "unsupported HTTP version"},
		"c20":    {"HTTP/1.1 20 OK\r\n\r\n", "3-digit"},
		"c2000":  {"HTTP/1.1 2000 OK\r\n\r\n", "3-digit"},
		"plus":   {"HTTP/1.1 +200 OK\r\n\r\n", "3-digit"},
		"lf":     {"HTTP/1.1 200 OK\n\nSSH-2.0-x\r\n", "bare LF"},
		"colon":  {"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "without a colon"},
		"nul":    {"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "NUL byte"},
		"big":    {"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "exceed 8192 bytes"},
		"silent": {"", "closed the connection without replying"},
		"short":  {"HTTP/1.1 200 OK\r\nX:", "in the middle of its reply (19 bytes received)"},
	}
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		host := strings.TrimSuffix(strings.TrimPrefix(req.Line, "CONNECT "), ":1 HTTP/1.1")
		io.WriteString(c, cases[host].reply)
		c.CloseWrite()
		io.Copy(io.Discard, c)
	})
	var outs []*Out
	var names []string
	for name := range cases {
		names = append(names, name)
		outs = append(outs, &Out{Host: name, Port: 1, ProxyHost: sp.Host, ProxyPort: sp.Port})
	}
	ports, logs, _ := tunnels(t, 0, outs...)
	for i, name := range names {
		nproxytest.DialClosed(t, ports[i], nil, 5*time.Second)
		logs.WaitFor(t, "CONNECT "+name+":1 through web proxy "+sp.Addr()+": ", cases[name].want)
	}
}

// TestHalfClose checks both directions once the tunnel is open: the
// client's EOF reaches the server while the server still answers, and the
// server's EOF reaches the client while the client still sends.
func TestHalfClose(t *testing.T) {
	got := make(chan string, 1)
	serverFirst := ct.Serve(t, func(c net.Conn) {
		io.WriteString(c, "bye\n")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	echo := ct.StartBannerServer(t)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		target := echo
		if strings.Contains(req.Line, "server-first") {
			target = serverFirst
		}
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\n\r\n", target)
	})
	ports, _, _ := tunnels(t, 0,
		&Out{Host: "client-first", Port: 1, ProxyHost: sp.Host, ProxyPort: sp.Port},
		&Out{Host: "server-first", Port: 1, ProxyHost: sp.Host, ProxyPort: sp.Port})

	echoCheck(t, nproxytest.Dial(t, ports[0]), 256<<10, true) // client EOF first, echo after it

	c := nproxytest.Dial(t, ports[1])
	if b, err := io.ReadAll(c); err != nil || string(b) != "bye\n" {
		t.Fatalf("server-first: read %q, %v", b, err)
	}
	msg := strings.Repeat("still talking\n", 1000)
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("writing after the server's EOF: %v", err)
	}
	c.CloseWrite()
	select {
	case s := <-got:
		if s != msg {
			t.Fatalf("server read %d bytes after its EOF, want %d", len(s), len(msg))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the client's EOF")
	}
}

// TestEarlyClientData checks that what the client sends before the tunnel
// is open reaches the server once it is, after the ct.Banner-bearing reply.
func TestEarlyClientData(t *testing.T) {
	up := ct.StartBannerServer(t)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		time.Sleep(200 * time.Millisecond)
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\n\r\n", up)
	})
	ports, _, _ := tunnels(t, 0, &Out{Host: "127.0.0.1", Port: up, ProxyHost: sp.Host, ProxyPort: sp.Port})
	echoCheck(t, nproxytest.Dial(t, ports[0]), 100<<10, true) // written at once, while the proxy waits
}

// TestSlowProxyDoesNotStall keeps a tunnel busy and opens new ones through
// a fast proxy while another proxy sits on its reply.
func TestSlowProxyDoesNotStall(t *testing.T) {
	up := ct.StartBannerServer(t)
	release := make(chan struct{})
	slow := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	defer close(release)
	fast := ct.StartTinyproxy(t, false)
	ports, _, _ := tunnels(t, 0,
		&Out{Host: "127.0.0.1", Port: up, ProxyHost: slow.Host, ProxyPort: slow.Port, Timeout: 20 * time.Second},
		&Out{Host: "127.0.0.1", Port: up, ProxyHost: fast.Host, ProxyPort: fast.Port})
	var stuck []*net.TCPConn
	for range 5 {
		stuck = append(stuck, nproxytest.Dial(t, ports[0]))
	}
	for range 5 {
		<-slow.Requests // every slow handshake is under way
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { echoCheck(t, nproxytest.Dial(t, ports[1]), 64<<10, false) })
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("20 tunnels through the fast proxy took %v while the slow one waited", d)
	}
	for _, c := range stuck {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1)); n != 0 || !nproxytest.IsTimeout(err) {
			t.Errorf("a client of the slow proxy got %d bytes, %v", n, err)
		}
	}
}

// TestNetProxyTcpConnect is Net::Proxy's t/tcp_connect scenario: a
// CONNECT for zlonk.crunch.com:443 through a proxy on localhost,
// Mainloop(2); after the 200 the server speaks first, then 5 lines go each
// in a random direction (the seed is logged); the client's close reaches
// the server; the second connection gets a 403 and the client sees EOF.
func TestNetProxyTcpConnect(t *testing.T) {
	servers := make(chan net.Conn, 1)
	finished := make(chan struct{})
	defer close(finished)
	lines := ct.Serve(t, func(c net.Conn) {
		servers <- c
		<-finished
	})
	var mu sync.Mutex
	n := 0
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if !first {
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
			return
		}
		ct.TunnelTo(c, "HTTP/1.1 200 Connection established\r\n\r\n", lines)
	})
	ports, logs, run := tunnels(t, 2, &Out{Host: "zlonk.crunch.com", Port: 443, ProxyHost: "localhost", ProxyPort: sp.Port})
	client := nproxytest.Dial(t, ports[0])
	if r := <-sp.Requests; r.Line != "CONNECT zlonk.crunch.com:443 HTTP/1.1" {
		t.Fatalf("proxy got %q", r.Line)
	}
	server := <-servers
	seed := time.Now().UnixNano()
	if s := os.Getenv("NPROXY_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("line directions: seed %d (replay with NPROXY_TEST_SEED)", seed)
	rng := rand.New(rand.NewSource(seed))
	cr, sr := bufio.NewReader(client), bufio.NewReader(server)
	sendLine(t, server, cr, "zlonk server ready\n") // the server speaks first
	for i := range 5 {
		line := "line " + strconv.Itoa(i) + " zlonk zok zapeth\n"
		if rng.Intn(2) == 0 {
			sendLine(t, client, sr, line)
		} else {
			sendLine(t, server, cr, line)
		}
	}
	client.Close()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := sr.ReadString('\n'); err != io.EOF {
		t.Fatalf("server read %q, %v after the client's close; want EOF", rest, err)
	}
	server.Close()
	nproxytest.DialClosed(t, ports[0], nil, 5*time.Second)
	logs.WaitFor(t, "refused: HTTP/1.1 403 Forbidden")
	run.Wait(t, 5*time.Second) // Mainloop(2) returns after the two connections
}

// sendLine writes line on w and expects it intact from r.
func sendLine(t *testing.T, w net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(w, line); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadString('\n'); got != line {
		t.Fatalf("read %q, %v; want %q", got, err, line)
	}
}

// TestClientResetDuringHandshake: a client that resets while the proxy
// has not answered yet; when the 200 comes, the proxy connection is
// closed promptly rather than kept for nobody. (Whether the handshake or
// the relay notices the reset first depends on the order of events in one
// epoll batch, so the log line is not checked.)
func TestClientResetDuringHandshake(t *testing.T) {
	gone := make(chan struct{})
	sawEOF := make(chan time.Duration, 1)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		<-gone
		time.Sleep(50 * time.Millisecond) // let the loop see the reset
		start := time.Now()
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello")
		io.Copy(io.Discard, c)
		sawEOF <- time.Since(start)
	})
	ports, _, _ := tunnels(t, 0, &Out{Host: "zlonk", Port: 443, ProxyHost: sp.Host, ProxyPort: sp.Port})
	c := nproxytest.Dial(t, ports[0])
	<-sp.Requests
	c.SetLinger(0)
	c.Close()
	close(gone)
	select {
	case d := <-sawEOF:
		if d > 3*time.Second {
			t.Errorf("proxy connection closed %v after the reply", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("proxy connection still open 5 s after the client's reset")
	}
}

// TestProxyDown: nothing listens where the web proxy should be; an IPv6
// target is named in brackets.
func TestProxyDown(t *testing.T) {
	port := nproxytest.FreePort(t)
	ports, logs, _ := tunnels(t, 0, &Out{Host: "2001:db8::1", Port: 22, ProxyHost: "127.0.0.1", ProxyPort: port})
	nproxytest.DialClosed(t, ports[0], nil, 5*time.Second)
	logs.WaitFor(t, "CONNECT [2001:db8::1]:22 through web proxy 127.0.0.1:"+strconv.Itoa(port)+": can't connect to 127.0.0.1:"+strconv.Itoa(port)+": connection refused")
}

// TestTwoLoops shares one Out between two loops (SO_REUSEPORT listeners).
func TestTwoLoops(t *testing.T) {
	nproxy.SetOptions(nproxy.Options{Loops: 2})
	t.Cleanup(func() { nproxy.SetOptions(nproxy.Options{}) })
	up := ct.StartBannerServer(t)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\n\r\n", up)
	})
	ports, _, _ := tunnels(t, 0, &Out{Host: "127.0.0.1", Port: up, ProxyHost: sp.Host, ProxyPort: sp.Port})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { echoCheck(t, nproxytest.Dial(t, ports[0]), 32<<10, true) })
	}
	wg.Wait()
}

// TestReplyThenEOF: the proxy sends the 200, the server's last words and
// its EOF in one go; the client gets the words, then EOF, and may still
// send.
func TestReplyThenEOF(t *testing.T) {
	got := make(chan string, 1)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, _ ct.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nlast words\n")
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	ports, _, _ := tunnels(t, 0, &Out{Host: "h", Port: 1, ProxyHost: sp.Host, ProxyPort: sp.Port})
	c := nproxytest.Dial(t, ports[0])
	if b, err := io.ReadAll(c); err != nil || string(b) != "last words\n" {
		t.Fatalf("client read %q, %v", b, err)
	}
	io.WriteString(c, "ack\n")
	c.CloseWrite()
	select {
	case s := <-got:
		if s != "ack\n" {
			t.Fatalf("proxy read %q after its EOF", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's EOF never reached the proxy")
	}
}
