//go:build soak

package soak

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// faultResets runs two proxies in one nproxy: through the first, one
// client in four resets its connection halfway; behind the second, an echo
// server resets every connection after a random number of bytes (up to
// 1 MiB). The other clients of the first must stay byte-exact, what the
// second's clients receive before the reset must be a prefix of what they
// sent, and nproxy must end as it began.
func faultResets(t *testing.T, r *row, d time.Duration) {
	echo, cutter := startEcho(t), startEcho(t)
	cutter.cut = func() int64 { return rand.Int64N(1 << 20) }
	a, b := nproxytest.FreePort(t), nproxytest.FreePort(t)
	p := startNproxy(t, []int{a, b}, "--in", tcpSpec(a), "--out", tcpSpec(echo.port()), "--in", tcpSpec(b), "--out", tcpSpec(cutter.port()))
	idle := p.usage(t)
	aborting := func(rng *rand.Rand, maxSize int64) transfer {
		tr := standard(rng, maxSize)
		tr.abort = rng.IntN(4) == 0
		return tr
	}
	good, cut := &tally{}, &tally{}
	ps := phases(d/2, 256)
	warm := cycles(t, p, idle, func(seed uint64) {
		var wg sync.WaitGroup
		wg.Go(func() { load{dial: dialTCP(a), plan: aborting}.run(ps, good, seed) })
		wg.Go(func() { load{dial: dialTCP(b), plan: standard}.run(ps, cut, seed^0xc0ffee) })
		wg.Wait()
	})
	r.add(t, "clients resetting: %v", good)
	r.add(t, "server resetting: %v", cut)
	good.exact(t)
	if cut.mismatches.Load() != 0 {
		t.Errorf("bytes differ before a server's reset: %s", cut.errors())
	}
	if good.aborted.Load() == 0 || cut.failed.Load() == 0 {
		t.Error("no reset happened")
	}
	checkUsage(t, r, p, idle, warm)
}

// socatEcho runs socat as an echo server on 127.0.0.1:port (a process per
// connection, in the process group that kill ends).
func socatEcho(t *testing.T, socat string, port int) *proc {
	p := start(t, socat, fmt.Sprintf("TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=512", port), "PIPE")
	p.waitFor(t, "socat to listen", func() bool { return nproxytest.Listening(port) })
	return p
}

// window sorts outcomes by when their connection started: before a fault
// ended (plus grace), or after. Its zero value puts everything before.
type window struct {
	end            atomic.Int64 // UnixNano when the fault ended; 0 while it lasts
	grace          time.Duration
	during, after  tally
	longestFailure atomic.Int64 // ns, among connections that failed
}

func (w *window) note(start time.Time, took time.Duration, n int64, err error) {
	end := w.end.Load()
	if end != 0 && start.UnixNano() > end+int64(w.grace) {
		w.after.note(n, err)
		return
	}
	w.during.note(n, err)
	if err != nil {
		for old := w.longestFailure.Load(); int64(took) > old && !w.longestFailure.CompareAndSwap(old, int64(took)); old = w.longestFailure.Load() {
		}
	}
}

// duringFault runs l with conns clients for cycle, twice (cycles), and
// fault a quarter of the way through each time; it returns the outcomes
// sorted by window and p's usage after the first cycle.
func duringFault(t *testing.T, p *proc, idle usage, l load, conns int, cycle time.Duration, fault func()) (*window, usage) {
	w := &window{grace: time.Second}
	warm := cycles(t, p, idle, func(seed uint64) {
		w.end.Store(0)
		done := make(chan struct{})
		go func() {
			l.runEach([]phase{{conns: conns, maxSize: 4 << 20, d: cycle}}, seed, w.note)
			close(done)
		}()
		time.Sleep(cycle / 4) // the fault's schedule, not a wait for an event
		fault()
		w.end.Store(time.Now().UnixNano())
		<-done
	})
	return w, warm
}

// check fails t if bytes differed, if the fault failed nothing, or if a
// connection started after it failed or none did.
func (w *window) check(t *testing.T) {
	t.Helper()
	if w.during.mismatches.Load() != 0 {
		t.Errorf("bytes differ: %s", w.during.errors())
	}
	if w.during.failed.Load() == 0 {
		t.Error("no connection failed during the fault")
	}
	w.after.exact(t)
	if w.after.ok.Load() == 0 {
		t.Error("no connection after the fault")
	}
}

// notEarly is the standard transfer without the early half-close: socat's
// PIPE and tinyproxy end a connection at the client's EOF, maybe before
// the echo.
func notEarly(rng *rand.Rand, maxSize int64) transfer {
	tr := standard(rng, maxSize)
	tr.early = false
	return tr
}

// faultBackendRestart kills the backend (socat, with every connection it
// serves) a quarter of the way through each of two cycles, and starts it again 2 s later on
// the same port. Connections started 1 s after the restart must all
// succeed, and none may ever differ.
func faultBackendRestart(t *testing.T, r *row, d time.Duration) {
	socat := nproxytest.Command(t, "socat")
	port, in := nproxytest.FreePort(t), nproxytest.FreePort(t)
	backend := socatEcho(t, socat, port)
	p := startNproxy(t, []int{in}, "--in", tcpSpec(in), "--out", tcpSpec(port))
	idle := p.usage(t)
	w, warm := duringFault(t, p, idle, load{dial: dialTCP(in), plan: notEarly}, 64, max(d/2, 8*time.Second), func() {
		backend.kill(t)
		time.Sleep(2 * time.Second)
		backend = socatEcho(t, socat, port)
	})
	r.add(t, "killed twice: until 1 s after each restart %v; after %v", &w.during, &w.after)
	w.check(t)
	checkUsage(t, r, p, idle, warm)
}

// faultFileLimit runs nproxy under prlimit --nofile=64 with 200 clients at
// once. Its default maxconn is sized from that limit ((64 - 16) / 2.5 = 19
// connections, with 4 pipes at most: see fdlimit.go), so accept pauses
// before EMFILE, the streams beyond the pipes copy, and the
// next clients wait in the kernel's backlog: nproxy must reach that bound,
// never pass the fd limit, and serve every client byte-exact, then hold
// what it held at idle. (EMFILE itself, the backstop when maxconn is set
// past the fd limit, is cmd/nproxy's TestAcceptSurvivesEMFILE and loop's
// TestAcceptPausesOnEMFILE.)
func faultFileLimit(t *testing.T, r *row, d time.Duration) {
	prlimit := nproxytest.Command(t, "prlimit")
	const limit = 64
	echo := startEcho(t)
	in := nproxytest.FreePort(t)
	p := startNproxyVia(t, []int{in}, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit)},
		"--in", tcpSpec(in), "--out", tcpSpec(echo.port()))
	idle := p.usage(t)
	l := load{dial: dialTCP(in), plan: standard}
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() { // the fds nproxy holds, every 20 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if u, err := usageOf(p.cmd.Process.Pid); err == nil && int64(u.fds) > peak.Load() {
				peak.Store(int64(u.fds))
			}
		}
	}()
	over, recovered := &tally{}, &tally{}
	l.run([]phase{{conns: 200, maxSize: 256 << 10, d: d}}, over, rand.Uint64())
	close(stop)
	l.run([]phase{{conns: 8, maxSize: 64 << 10, d: 2 * time.Second}}, recovered, rand.Uint64())
	r.add(t, "--nofile=%d, 200 clients at once: %v; nproxy held at most %d fds", limit, over, peak.Load())
	r.add(t, "afterwards, 8 at once: %v", recovered)
	over.exact(t)
	// Each connection holds its two sockets, and a pipe pair while spliced
	// data is in flight, with one pipe for 4 connections at most: 2.5 fds.
	const maxconn = (limit - limit/4) * 4 / 10
	if low := int64(idle.fds + 2*maxconn); peak.Load() < low {
		t.Errorf("nproxy held at most %d fds: its maxconn of %d (at least %d fds) was not reached", peak.Load(), maxconn, low)
	}
	if peak.Load() > limit {
		t.Errorf("nproxy held %d fds, past its limit of %d", peak.Load(), limit)
	}
	if s := p.stderr.String(); strings.Contains(s, "too many open files") {
		t.Errorf("nproxy ran out of fds:\n%s", tail(s, 4096))
	}
	recovered.exact(t)
	end := p.settled(t, idle)
	r.add(t, "nproxy idle %v; end %v", idle, end)
	checkFDs(t, p, idle, end)
}

// faultProxyStops sends clients through tinyproxy with CONNECT and stops
// tinyproxy (SIGSTOP) for 5 s a quarter of the way through each of two
// cycles: tunnels set up meanwhile must fail at connect's timeout (2 s,
// 1.5 s late at most), tunnels already open must resume intact after
// SIGCONT, and connections started 1 s after it must all succeed.
func faultProxyStops(t *testing.T, r *row, d time.Duration) {
	echo := startEcho(t)
	tp, tpPort := startTinyproxy(t, echo.port())
	in := nproxytest.FreePort(t)
	out := fmt.Sprintf("type=connect,host=127.0.0.1,port=%d,proxy_host=127.0.0.1,proxy_port=%d,timeout=2", echo.port(), tpPort)
	p := startNproxy(t, []int{in}, "--in", tcpSpec(in), "--out", out)
	idle := p.usage(t)
	// 3 s before the stop and 4 s after it, at least
	w, warm := duringFault(t, p, idle, load{dial: dialTCP(in), plan: notEarly}, 32, max(d/2, 12*time.Second), func() {
		tp.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(5 * time.Second)
		tp.cmd.Process.Signal(syscall.SIGCONT)
	})
	longest := time.Duration(w.longestFailure.Load())
	r.add(t, "stopped 5 s twice: until 1 s after SIGCONT %v (longest failure %v); after %v", &w.during, longest.Round(time.Millisecond), &w.after)
	w.check(t)
	if longest > 3500*time.Millisecond {
		t.Errorf("a client waited %v for a tunnel through the stopped proxy (connect's timeout: 2 s)", longest)
	}
	checkUsage(t, r, p, idle, warm)
}

// slowloris keeps n connections to port open until the deadline: each
// trickles hello one byte every 300 ms until it reads something or the
// connection ends (10 s at most), then starts again. It notes in took how
// long each connection waited for a byte or the end.
func slowloris(port, n int, hello []byte, deadline time.Time, took *latencies) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				took.add(slowClient(port, hello, 10*time.Second))
			}
		})
	}
	wg.Wait()
}

func slowClient(port int, hello []byte, limit time.Duration) time.Duration {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr(port), 5*time.Second)
	if err != nil {
		return limit
	}
	defer c.Close()
	c.SetDeadline(start.Add(limit))
	answered := make(chan time.Duration, 1)
	go func() {
		c.Read(make([]byte, 1)) // a byte, the end, or the deadline
		answered <- time.Since(start)
	}()
	for j := 0; ; j = (j + 1) % len(hello) {
		select {
		case took := <-answered:
			return took
		case <-time.After(300 * time.Millisecond):
		}
		c.Write(hello[j : j+1])
	}
}

// faultSlowloris keeps 100 slow clients on each of dual (1 s timeout, an
// ssh probe that their trickled "SSH-2.0" matches only after the timeout),
// an ssl in (2 s handshake timeout), and a connect out whose web proxy
// trickles its reply (2 s timeout), while 32 clients go through a plain
// tcp proxy of the same nproxy. The slow ones must be answered or closed
// within their timeout plus 1.5 s, and the others see no stall.
func faultSlowloris(t *testing.T, r *row, d time.Duration) {
	echo := startEcho(t)
	banner := connecttest.StartBannerServer(t)
	trickler := connecttest.StartScriptedProxy(t, func(c *net.TCPConn, _ connecttest.Request) {
		for _, b := range []byte("HTTP/1.1 200 Connection established\r\nX-Slow: " + string(make([]byte, 200))) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	certs := ssltest.New(t)
	plain, dual, tls, conn := nproxytest.FreePort(t), nproxytest.FreePort(t), nproxytest.FreePort(t), nproxytest.FreePort(t)
	p := startNproxy(t, []int{plain, dual, tls, conn},
		"--in", tcpSpec(plain), "--out", tcpSpec(echo.port()),
		"--in", fmt.Sprintf("type=dual,host=127.0.0.1,port=%d,timeout=1,client_first.type=tcp,client_first.host=127.0.0.1,client_first.port=%d,"+
			"server_first.type=tcp,server_first.host=127.0.0.1,server_first.port=%d,probes.0.type=ssh,probes.0.out=server_first", dual, echo.port(), banner),
		"--out", "type=dummy",
		"--in", fmt.Sprintf("type=ssl,host=127.0.0.1,port=%d,timeout=2,SSL_cert_file=%s,SSL_key_file=%s", tls, certs.ServerCert, certs.ServerKey),
		"--out", tcpSpec(echo.port()),
		"--in", tcpSpec(conn),
		"--out", fmt.Sprintf("type=connect,host=127.0.0.1,port=%d,proxy_host=127.0.0.1,proxy_port=%d,timeout=2", echo.port(), trickler.Port))
	idle := p.usage(t)
	d = max(d, 8*time.Second)

	var lat latencies
	tl := &tally{}
	done := make(chan struct{})
	go func() {
		small := func(rng *rand.Rand, _ int64) transfer { return standard(rng, 64<<10) }
		load{dial: dialTCP(plain), plan: small}.runEach([]phase{{conns: 32, d: d}}, rand.Uint64(), func(_ time.Time, took time.Duration, n int64, err error) {
			tl.note(n, err)
			lat.add(took)
		})
		close(done)
	}()
	var slow [3]latencies
	var wg sync.WaitGroup
	for i, c := range []struct {
		port  int
		hello string
	}{{dual, "SSH-2.0-slowloris\r\n"}, {tls, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}, {conn, "GET / HTTP/1.1\r\n"}} {
		wg.Go(func() { slowloris(c.port, 100, []byte(c.hello), time.Now().Add(d), &slow[i]) })
	}
	wg.Wait()
	<-done
	r.add(t, "plain clients meanwhile: %v, round trip %v", tl, &lat)
	tl.exact(t)
	if p99 := lat.quantile(0.99); p99 > 500*time.Millisecond {
		t.Errorf("plain clients stalled: 99th percentile %v", p99)
	}
	for i, c := range []struct {
		what    string
		timeout time.Duration
	}{{"dual, answered", time.Second}, {"ssl in, closed", 2 * time.Second}, {"connect, closed", 2 * time.Second}} {
		l := &slow[i]
		r.add(t, "100 slowloris at a time on %s after %v (timeout %v)", c.what, l, c.timeout)
		if worst := l.quantile(1); worst > c.timeout+1500*time.Millisecond {
			t.Errorf("%s: a slow client waited %v", c.what, worst)
		}
	}
	end := p.settled(t, idle)
	r.add(t, "nproxy idle %v; end %v", idle, end)
	checkFDs(t, p, idle, end)
}

// latencies collects durations; it is safe for concurrent use.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// quantile returns the q-th quantile (0 to 1), 0 if there is nothing.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func (l *latencies) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v", l.quantile(0.5).Round(time.Millisecond), l.quantile(0.99).Round(time.Millisecond), l.quantile(1).Round(time.Millisecond))
}
