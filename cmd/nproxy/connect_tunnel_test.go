package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/connect"
	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/nproxytest"
)

func TestParseConnectTunnel(t *testing.T) {
	env := map[string]string{"HTTP_PROXY": "http://envu:envp@envproxy:3128/"}
	getenv := func(k string) string { return env[k] }
	parse := func(args ...string) (*connectTunnelOptions, error) {
		return parseConnectTunnel(args, getenv, "9.9", io.Discard)
	}
	o, err := parse("-P", "proxy.company.com", "-T", "22:ssh.example.com:443", "--tunnel=222:ssh-2.example.com:443",
		"-T", "2222:[2001:db8::1]:22", "-L", "-v", "--verbose", "-v")
	if err != nil {
		t.Fatal(err)
	}
	want := &connectTunnelOptions{
		Proxy:     connect.WebProxy{Host: "proxy.company.com", Port: 8080},
		Tunnels:   []tunnel{{22, "ssh.example.com", 443}, {222, "ssh-2.example.com", 443}, {2222, "2001:db8::1", 22}},
		LocalOnly: true, Agent: "connect-tunnel/9.9", Verbosity: 3,
	}
	if fmt.Sprint(o) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
	o, err = parse("-T", "1:h:2", "-A", "book:s3:kr3t", "-U", "Mozilla/4.03 [en]")
	if err != nil || o.Proxy != (connect.WebProxy{Host: "envproxy", Port: 3128, User: "book", Pass: "s3:kr3t"}) ||
		o.Agent != "Mozilla/4.03 [en]" || o.LocalOnly {
		t.Errorf("HTTP_PROXY default, -A over its credentials: %+v, %v", o, err)
	}
	o, err = parse("--proxy", "p:1", "--proxy-authentication", "solo", "--local-only", "--user-agent", "x", "-T", "1:h:2")
	if err != nil || o.Proxy != (connect.WebProxy{Host: "p", Port: 1, User: "solo"}) || !o.LocalOnly || o.Agent != "x" {
		t.Errorf("long options: %+v, %v", o, err)
	}
	delete(env, "HTTP_PROXY")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-T", "1:h:2"}, "--proxy <proxy:port> option required"},
		{[]string{"-P", "p"}, "--tunnel <port:host:hostport> option required"},
		{[]string{"-P", "p", "-T", "1:h"}, "--tunnel <port:host:hostport> format required"},
		{[]string{"-P", "p", "-T", "x:h:2"}, "--tunnel <port:host:hostport> format required"},
		{[]string{"-P", "p", "-T", "1:h/x:2"}, "--tunnel <port:host:hostport> format required"},
		{[]string{"-P", "p", "-T", "70000:h:2"}, "port out of range"},
		{[]string{"-P", "p:0", "-T", "1:h:2"}, "--proxy: proxy \"p:0\": port out of range"},
		{[]string{"-P", "p", "-T", "1:h:2", "extra"}, "unexpected argument \"extra\""},
		{[]string{"-P", "p", "-T", "1:h:2", "-X"}, "flag provided but not defined: -X"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// echoThrough checks a tunnel to the banner server: the banner first,
// then n random bytes echoed, read back in full before closing (tinyproxy
// tears the tunnel down at the client's EOF).
func echoThrough(t *testing.T, port, n int) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := make([]byte, n)
	rand.Read(payload)
	go c.Write(payload)
	got := make([]byte, len(ct.Banner)+n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	if !bytes.Equal(got, append([]byte(ct.Banner), payload...)) {
		t.Fatalf("port %d: bytes differ", port)
	}
}

func TestConnectTunnelUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"connect-tunnel", "-T", "2222:h:22"}, "--proxy <proxy:port> option required\n"},
		{[]string{"connect-tunnel", "-P", "127.0.0.1:1"}, "--tunnel <port:host:hostport> option required\n"},
		{[]string{"connect-tunnel", "-P", "127.0.0.1:1", "-T", "2222:h"}, "--tunnel <port:host:hostport> format required\n"},
		{[]string{"connect-tunnel", "-P", "127.0.0.1:1", "-T", "1:h:2", "-A", "a:b:c", "-U", "x\ny"},
			"--tunnel #1: proxy_agent contains a line break or NUL\n"},
		{[]string{"connect-tunnel", "--nope"}, "flag provided but not defined: -nope"},
	} {
		code, stderr := runNproxy(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if code, stderr := runNproxy(t, nil, "connect-tunnel", "--help"); code != 0 || !strings.Contains(stderr, "-T, --tunnel") {
		t.Errorf("--help: exit %d, %q", code, stderr)
	}
}

// TestConnectTunnelTinyproxy runs the command as the script's manual
// shows, through tinyproxy with Basic auth and a ConnectPort rule.
func TestConnectTunnelTinyproxy(t *testing.T) {
	up := ct.StartBannerServer(t)
	tp := ct.StartTinyproxy(t, true, up)
	p1, p2, p3 := ct.FreePort(t), ct.FreePort(t), ct.FreePort(t)
	c := startNproxy(t, nil, []int{p1, p2, p3}, "connect-tunnel", "-L", "-v", "-P", tp.Addr(), "-A", ct.User+":"+ct.Pass,
		"-T", fmt.Sprintf("%d:127.0.0.1:%d", p1, up),
		"--tunnel", fmt.Sprintf("%d:localhost:%d", p2, up),
		"-T", fmt.Sprintf("%d:127.0.0.1:%d", p3, up+1))
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() { echoThrough(t, []int{p1, p2}[i%2], 1<<20) })
	}
	wg.Wait()
	nproxytest.DialClosed(t, p3, nil, 5*time.Second)
	waitStderr(t, c, fmt.Sprintf("CONNECT 127.0.0.1:%d through web proxy %s: refused: HTTP/1.1 403 Access violation", up+1, tp.Addr()))

	// wrong credentials, and the proxy taken from HTTP_PROXY
	p4, p5 := ct.FreePort(t), ct.FreePort(t)
	env := []string{"HTTP_PROXY=http://" + ct.User + ":" + ct.Pass + "@" + tp.Addr() + "/"}
	c2 := startNproxy(t, env, []int{p4}, "connect-tunnel", "-T", fmt.Sprintf("%d:127.0.0.1:%d", p4, up))
	startNproxy(t, env, []int{p5}, "connect-tunnel", "-L", "-A", "book:wrong", "-T", fmt.Sprintf("%d:127.0.0.1:%d", p5, up))
	echoThrough(t, p4, 1000)
	nproxytest.DialClosed(t, p5, nil, 5*time.Second)
	if strings.Contains(c2.stderr.String(), "refused") {
		t.Errorf("HTTP_PROXY tunnel logged a refusal: %s", c2.stderr.String())
	}
}

// TestConnectTunnelRequest checks the request the command sends: the
// default User-Agent, -U, and the credentials.
func TestConnectTunnelRequest(t *testing.T) {
	up := ct.StartBannerServer(t)
	sp := ct.StartScriptedProxy(t, func(c *net.TCPConn, req ct.Request) {
		ct.TunnelTo(c, "HTTP/1.1 200 OK\r\n\r\n", up)
	})
	p1, p2 := ct.FreePort(t), ct.FreePort(t)
	startNproxy(t, nil, []int{p1}, "connect-tunnel", "-L", "-P", sp.Addr(), "-T", fmt.Sprintf("%d:zlonk.crunch.com:443", p1))
	startNproxy(t, nil, []int{p2}, "connect-tunnel", "-L", "-P", sp.Addr(), "-U", "Mozilla/4.03 [en] (X11; I; Linux 2.1.89 i586)",
		"-A", "book:s3kr3t", "-T", fmt.Sprintf("%d:[::1]:22", p2))
	echoThrough(t, p1, 10)
	r := <-sp.Requests
	if r.Line != "CONNECT zlonk.crunch.com:443 HTTP/1.1" || r.Headers["User-Agent"] != "connect-tunnel/0.1.0" ||
		r.Headers["Proxy-Authorization"] != "" {
		t.Errorf("defaults: %+v", r)
	}
	echoThrough(t, p2, 10)
	r = <-sp.Requests
	if r.Line != "CONNECT [::1]:22 HTTP/1.1" || r.Headers["User-Agent"] != "Mozilla/4.03 [en] (X11; I; Linux 2.1.89 i586)" ||
		r.Headers["Proxy-Authorization"] != "Basic Ym9vazpzM2tyM3Q=" {
		t.Errorf("-U and -A: %+v", r)
	}
}

// TestConnectOutSpecAndYAML reaches the connector as --out type=connect
// and from a YAML file, and checks the configuration error exits 2.
func TestConnectOutSpecAndYAML(t *testing.T) {
	up := ct.StartBannerServer(t)
	tp := ct.StartTinyproxy(t, true, up)
	p1, p2 := ct.FreePort(t), ct.FreePort(t)
	startNproxy(t, nil, []int{p1}, "--in", fmt.Sprintf("type=tcp,host=127.0.0.1,port=%d", p1),
		"--out", fmt.Sprintf("type=connect,host=127.0.0.1,port=%d,proxy_host=127.0.0.1,proxy_port=%d,proxy_user=%s,proxy_pass=%s,timeout=2",
			up, tp.Port, ct.User, ct.Pass))
	echoThrough(t, p1, 64<<10)

	yaml := fmt.Sprintf(`proxies:
  - in: {type: tcp, host: 127.0.0.1, port: %d}
    out:
      type: connect
      host: 127.0.0.1
      port: %d
      proxy_agent: nproxy-yaml
      timeout: 1.5
`, p2, up)
	file := filepath.Join(t.TempDir(), "nproxy.yaml")
	os.WriteFile(file, []byte(yaml), 0o600)
	env := []string{"http_proxy=http://" + ct.User + ":" + ct.Pass + "@" + tp.Addr()}
	startNproxy(t, env, []int{p2}, "-c", file)
	echoThrough(t, p2, 64<<10)

	code, stderr := runNproxy(t, nil, "--in", "type=tcp,port=1", "--out", "type=connect,host=h,port=1")
	if code != 2 || !strings.Contains(stderr, "'out' connector (connect): proxy_host parameter is required") {
		t.Errorf("no proxy: exit %d, %q", code, stderr)
	}
}

// FuzzParseTunnel checks that any -T value is refused or gives ports in
// range and a host without separators.
func FuzzParseTunnel(f *testing.F) {
	for _, s := range []string{"22:ssh.example.com:443", "2222:[::1]:22", "1:h", "x:h:2", "70000:h:1", "1:[:2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := parseTunnel(s)
		if err == nil && (tn.Port < 1 || tn.Port > 65535 || tn.HostPort < 1 || tn.HostPort > 65535 ||
			tn.Host == "" || strings.ContainsAny(tn.Host, "[]/ \r\n")) {
			t.Fatalf("%q accepted as %+v", s, tn)
		}
	})
}

// TestConnectTunnelNoLeak opens and refuses many tunnels, then checks that
// the command holds no more sockets than when it started.
func TestConnectTunnelNoLeak(t *testing.T) {
	up := ct.StartBannerServer(t)
	tp := ct.StartTinyproxy(t, true, up)
	ok, forbidden := ct.FreePort(t), ct.FreePort(t)
	c := startNproxy(t, nil, []int{ok, forbidden}, "connect-tunnel", "-L", "-P", tp.Addr(), "-A", ct.User+":"+ct.Pass,
		"-T", fmt.Sprintf("%d:127.0.0.1:%d", ok, up), "-T", fmt.Sprintf("%d:127.0.0.1:%d", forbidden, up+1))
	before := countSockets(t, c.cmd.Process.Pid)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				echoThrough(t, ok, 1000)
				nproxytest.DialClosed(t, forbidden, nil, 5*time.Second)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for n := countSockets(t, c.cmd.Process.Pid); n != before; n = countSockets(t, c.cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("nproxy holds %d sockets after 80 tunnels, %d before", n, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countSockets counts the sockets among pid's file descriptors (pooled
// pipes are left out: the pool keeps some on purpose).
func countSockets(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(link, "socket:") {
			n++
		}
	}
	return n
}

// FuzzConnectTunnelArgs feeds connect-tunnel's whole command line: options
// or one error, never a panic; accepted tunnels are sane.
func FuzzConnectTunnelArgs(f *testing.F) {
	for _, s := range []string{"-P proxy:8080 -T 2222:ssh.example.com:22 -A u:p -L -U x -v", "-T 1:::1:2 -P [::1]:3128", "-P http://u:p@h:1/ -T 1:h:2 -T 3:h:4", "-T 1:h:2", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := parseConnectTunnel(strings.Fields(line), func(string) string { return "" }, "test", io.Discard)
		if err != nil {
			return
		}
		if o.Proxy.Host == "" || o.Proxy.Port < 1 || o.Proxy.Port > 65535 || len(o.Tunnels) == 0 {
			t.Fatalf("%q accepted with proxy %+v and %d tunnels", line, o.Proxy, len(o.Tunnels))
		}
	})
}
