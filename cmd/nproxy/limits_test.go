package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// TestFdLimit: nproxy under prlimit --nofile=256 and 600 clients at once.
// Its default maxconn, sized on the fd limit, pauses accept before EMFILE:
// the loop does not spin (under 20% of a CPU over 3 s at the limit), no
// client fails, and every one is served byte-exact once others leave.
func TestFdLimit(t *testing.T) {
	t.Parallel()
	prlimit := nproxytest.Command(t, "prlimit")
	echo := goEcho(t, "127.0.0.1:0")
	in := unusedPort(t, "127.0.0.1")
	p := startChild(t, prlimit, "--nofile=256", nproxyBin,
		"--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", echo))
	waitListening(t, p, in)

	const clients = 600
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dialClient(t, addrOf("127.0.0.1", in))
	}
	const maxConn = (256 - 64) * 4 / 10 // nproxy's fdReserve, and 2.5 fds a connection (fdlimit.go)
	mustEventually(t, 10*time.Second, "nproxy to reach its connection bound", func() bool {
		files, err := openFiles(p.pid())
		return err == nil && len(files.sockets) >= 2*maxConn
	})
	before := cpuTicks(t, p.pid())
	time.Sleep(3 * time.Second)                           // the measure's span: the loop must rest meanwhile
	if used := cpuTicks(t, p.pid()) - before; used > 60 { // 0.6 s at Linux's USER_HZ of 100
		t.Errorf("nproxy used %d clock ticks of CPU in 3 s at its fd limit (a spinning accept?)", used)
	}

	data := randomBytes(newRand(t), 64<<10)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Go(func() {
			if err := echoRoundTrip(c, data, newRand(t)); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
			c.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := p.stderr.String(); strings.Contains(s, "too many open files") {
		t.Errorf("nproxy ran out of fds:\n%s", s)
	}
}

// The limit keys are taken from the in side (and the top level) before the
// in connector sees them, and checked like every key.
func TestLimitKeys(t *testing.T) {
	t.Parallel()
	good := [][]string{
		{"--in", "type=tcp,port=1000,maxconn=10,max_per_source=2,idle_timeout=30,allow=10.0.0.0/8,deny=10.1.2.3", "--out", "type=tcp,host=h,port=1"},
		{"-c", yamlFile(t, "maxconn: 100\nconnect_timeout: 2\nallow: [127.0.0.1, \"::1\"]\nproxies: [{in: {type: tcp, port: 1000, idle_timeout: 0.5}, out: {type: tcp, host: h, port: 1}}]\n")},
	}
	for _, args := range good {
		if _, _, err := configure(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	bad := map[string][]string{
		"deny: \"10.0.0.0/33\"":      {"--in", "type=tcp,port=1000,deny=10.0.0.0/33", "--out", "type=tcp,host=h,port=1"},
		"maxconn expects an integer": {"--in", "type=tcp,port=1000,maxconn=x", "--out", "type=tcp,host=h,port=1"},
		"allow: \"nowhere\"":         {"-c", yamlFile(t, "allow: nowhere\nproxies: [{in: {type: tcp, port: 1000}, out: {type: tcp, host: h, port: 1}}]\n")},
	}
	for want, args := range bad {
		_, _, err := configure(args)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", args, err, want)
		}
	}
}

// connect_timeout at the top level bounds the connects of out connectors
// that set no timeout: here against a server that never answers.
func TestConnectTimeoutKey(t *testing.T) {
	t.Parallel()
	_, hole := fullListener(t)
	in := unusedPort(t, "127.0.0.1")
	p := startChild(t, nproxyBin, "-v", "-c", yamlFile(t, "connect_timeout: 0.5\n"),
		"--in", tcpSpec("127.0.0.1", in), "--out", tcpSpec("127.0.0.1", hole))
	waitListening(t, p, in)
	c := dialClient(t, addrOf("127.0.0.1", in))
	begin := time.Now()
	nproxytest.ExpectEOF(t, c, 5*time.Second)
	if took := time.Since(begin); took < 400*time.Millisecond || took > 4*time.Second {
		t.Errorf("client closed after %v, want about the 0.5 s connect_timeout", took)
	}
	waitStderr(t, p, "connection timed out")
}
