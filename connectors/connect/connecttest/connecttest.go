// Package connecttest runs the peers that tests of HTTP CONNECT tunnels
// need, on 127.0.0.1: a real tinyproxy, a server that speaks first (an
// SSH-like banner, then an echo), and a scripted web proxy for the
// misbehaviour tinyproxy won't show.
//
//	up := connecttest.StartBannerServer(t)
//	tp := connecttest.StartTinyproxy(t, true, up) // Basic auth, CONNECT only to up
//	// tunnel to 127.0.0.1:up through tp.Addr() with tp.User, tp.Pass
//
// Every peer stops when the test ends.
package connecttest

import (
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
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

const (
	// User and Pass are the credentials tinyproxy wants when started with auth.
	User = "book"
	Pass = "s3kr3t"
	// Banner is what the banner server sends first.
	Banner = "SSH-2.0-OpenSSH_9.2p1 nproxy-test\r\n"
)

// Tinyproxy is a running tinyproxy process.
type Tinyproxy struct {
	Host       string
	Port       int
	User, Pass string // empty without auth
	Log        string // its log file
}

// Addr returns host:port.
func (tp *Tinyproxy) Addr() string { return net.JoinHostPort(tp.Host, strconv.Itoa(tp.Port)) }

// StartTinyproxy runs tinyproxy in the foreground on a free 127.0.0.1 port,
// with Basic auth (User, Pass) when auth is set, and CONNECT allowed only
// to ports when any are given. It skips the test if tinyproxy is absent.
func StartTinyproxy(t testing.TB, auth bool, ports ...int) *Tinyproxy {
	t.Helper()
	bin := nproxytest.Command(t, "tinyproxy")
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

func tryTinyproxy(t testing.TB, bin string, auth bool, ports []int) (*Tinyproxy, error) {
	dir := t.TempDir()
	tp := &Tinyproxy{Host: "127.0.0.1", Port: nproxytest.FreePort(t), Log: filepath.Join(dir, "tinyproxy.log")}
	conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nLogLevel Info\n"+
		"LogFile %q\nPidFile %q\nDisableViaHeader Yes\n", tp.Port, tp.Log, filepath.Join(dir, "tinyproxy.pid"))
	if auth {
		tp.User, tp.Pass = User, Pass
		conf += fmt.Sprintf("BasicAuth %s %s\n", User, Pass)
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
			logText, _ := os.ReadFile(tp.Log)
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

// FreePort is nproxytest.FreePort, kept for the tests of cmd/nproxy.
//
// Deprecated: use nproxytest.FreePort.
func FreePort(t testing.TB) int { return nproxytest.FreePort(t) }

// Serve accepts on a fresh 127.0.0.1 listener until the test ends, running
// handle on its own goroutine for each connection (closed when handle
// returns, and after 30 s at most); it returns the listener's port.
func Serve(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	return nproxytest.ServeTCP(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		handle(c)
	})
}

// StartBannerServer runs an SSH-like server and returns its port: it
// speaks first (Banner), then echoes everything, and half-closes after the
// client's EOF.
func StartBannerServer(t testing.TB) int {
	return Serve(t, func(c net.Conn) {
		if _, err := io.WriteString(c, Banner); err != nil {
			return
		}
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// Request is what the scripted proxy received.
type Request struct {
	Line    string            // request line
	Headers map[string]string // canonical name → value
}

// ScriptedProxy is a web proxy whose replies a test writes by hand.
type ScriptedProxy struct {
	Host string
	Port int
	// Requests receives each request head (the first 64 that were not
	// taken are kept).
	Requests chan Request
}

// Addr returns host:port.
func (sp *ScriptedProxy) Addr() string { return net.JoinHostPort(sp.Host, strconv.Itoa(sp.Port)) }

// StartScriptedProxy reads each CONNECT request head, reports it on
// Requests, and hands the connection to script.
func StartScriptedProxy(t testing.TB, script func(c *net.TCPConn, req Request)) *ScriptedProxy {
	sp := &ScriptedProxy{Host: "127.0.0.1", Requests: make(chan Request, 64)}
	sp.Port = Serve(t, func(c net.Conn) {
		req, err := ReadRequestHead(c)
		if err != nil {
			t.Logf("scripted proxy: %v", err)
			return
		}
		select {
		case sp.Requests <- req:
		default:
		}
		script(c.(*net.TCPConn), req)
	})
	return sp
}

// ReadRequestHead reads one request head byte by byte, so that nothing the
// client sends after it is buffered away from the tunnel.
func ReadRequestHead(r io.Reader) (Request, error) {
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8<<10 {
			return Request{}, errors.New("request head too long")
		}
		if _, err := r.Read(one); err != nil {
			return Request{}, fmt.Errorf("request head %q: %w", head, err)
		}
		head = append(head, one[0])
	}
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n\r\n"), "\r\n")
	req := Request{Line: lines[0], Headers: map[string]string{}}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		req.Headers[k] = strings.TrimSpace(v)
	}
	return req, nil
}

// TunnelTo opens the tunnel the way a proxy does: dial 127.0.0.1:target,
// send reply, then copy both ways, passing each EOF on as a half-close.
func TunnelTo(c *net.TCPConn, reply string, target int) {
	up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(target))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, reply); err != nil {
		return
	}
	SpliceHalfClose(c, up.(*net.TCPConn))
}

// SpliceHalfClose copies a↔b until both directions reached EOF, passing
// each EOF on as a half-close.
func SpliceHalfClose(a, b *net.TCPConn) {
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
