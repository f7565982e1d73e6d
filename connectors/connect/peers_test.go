package connect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The peers the tests run against: a real tinyproxy, a server that speaks
// first, and a scripted web proxy for the misbehaviour tinyproxy won't show.

const (
	proxyUser = "book"
	proxyPass = "s3kr3t"
	banner    = "SSH-2.0-OpenSSH_9.2p1 nproxy-test\r\n"
)

// tinyproxy is a running tinyproxy process.
type tinyproxy struct {
	WebProxy
	log string
}

// startTinyproxy runs tinyproxy in the foreground on a free 127.0.0.1 port,
// with Basic auth when auth is set and CONNECT allowed only to ports.
func startTinyproxy(t *testing.T, auth bool, ports ...int) *tinyproxy {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		t.Skip("tinyproxy not installed (apt-get install tinyproxy)")
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		tp, err := tryTinyproxy(t, bin, auth, ports)
		if err == nil {
			return tp
		}
		lastErr = err
	}
	t.Fatalf("tinyproxy: %v", lastErr)
	return nil
}

func tryTinyproxy(t *testing.T, bin string, auth bool, ports []int) (*tinyproxy, error) {
	dir := t.TempDir()
	tp := &tinyproxy{WebProxy: WebProxy{Host: "127.0.0.1", Port: freePort(t)}, log: filepath.Join(dir, "tinyproxy.log")}
	conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nLogLevel Info\n"+
		"LogFile %q\nPidFile %q\nDisableViaHeader Yes\n", tp.Port, tp.log, filepath.Join(dir, "tinyproxy.pid"))
	if auth {
		tp.User, tp.Pass = proxyUser, proxyPass
		conf += fmt.Sprintf("BasicAuth %s %s\n", proxyUser, proxyPass)
	}
	for _, p := range ports {
		conf += fmt.Sprintf("ConnectPort %d\n", p)
	}
	confPath := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-d", "-c", confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			logText, _ := os.ReadFile(tp.log)
			return nil, fmt.Errorf("exited (%v): %s %s", err, out.String(), lastLines(string(logText), 3))
		default:
		}
		if c, err := net.DialTimeout("tcp", tp.Addr(), time.Second); err == nil {
			c.Close()
			return tp, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, errors.New("not listening after 5 s")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a 127.0.0.1 port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve accepts on a fresh 127.0.0.1 listener until the test ends, running
// handle for each connection; it returns the listener's port.
func serve(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// startBannerServer runs an SSH-like server: it speaks first (the banner),
// then echoes everything, and half-closes after the client's EOF.
func startBannerServer(t *testing.T) int {
	return serve(t, func(c net.Conn) {
		if _, err := io.WriteString(c, banner); err != nil {
			return
		}
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// proxyRequest is what the scripted proxy received.
type proxyRequest struct {
	Line    string            // request line
	Headers map[string]string // canonical name → value
}

// scriptedProxy is a web proxy whose replies a test writes by hand.
type scriptedProxy struct {
	WebProxy
	requests chan proxyRequest
}

// startScriptedProxy reads each CONNECT request head, reports it on
// requests, and hands the connection to script.
func startScriptedProxy(t *testing.T, script func(c *net.TCPConn, req proxyRequest)) *scriptedProxy {
	sp := &scriptedProxy{requests: make(chan proxyRequest, 64)}
	sp.Host = "127.0.0.1"
	sp.Port = serve(t, func(c net.Conn) {
		req, err := readRequestHead(bufio.NewReader(c))
		if err != nil {
			t.Logf("scripted proxy: %v", err)
			return
		}
		select {
		case sp.requests <- req:
		default:
		}
		script(c.(*net.TCPConn), req)
	})
	return sp
}

// readRequestHead reads one request head byte by byte, so that nothing the
// client sends after it is buffered away from the tunnel.
func readRequestHead(r io.Reader) (proxyRequest, error) {
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8<<10 {
			return proxyRequest{}, errors.New("request head too long")
		}
		if _, err := r.Read(one); err != nil {
			return proxyRequest{}, fmt.Errorf("request head %q: %w", head, err)
		}
		head = append(head, one[0])
	}
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n\r\n"), "\r\n")
	req := proxyRequest{Line: lines[0], Headers: map[string]string{}}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		req.Headers[k] = strings.TrimSpace(v)
	}
	return req, nil
}

// tunnelTo opens the tunnel the way a proxy does: dial target, send reply,
// then copy both ways, passing each EOF on as a half-close.
func tunnelTo(c *net.TCPConn, reply string, target int) {
	up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(target))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, reply); err != nil {
		return
	}
	spliceHalfClose(c, up.(*net.TCPConn))
}

// spliceHalfClose copies a↔b until both directions reached EOF.
func spliceHalfClose(a, b *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		io.Copy(b, a)
		b.CloseWrite()
		close(done)
	}()
	io.Copy(a, b)
	a.CloseWrite()
	<-done
}

func itoa(n int) string { return strconv.Itoa(n) }
