//go:build soak

package soak

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"github.com/nproxy/nproxy/nproxytest"
)

// relay is one byte-exact case: nproxy started with args, listening on
// port, and clients that dial it and plan their transfers.
type relay struct {
	args  []string
	port  int
	load  load
	limit int // most clients at once
}

func tcpSpec(port int) string { return fmt.Sprintf("type=tcp,host=127.0.0.1,port=%d", port) }

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func dialTCP(port int) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", addr(port), 10*time.Second) }
}

// run starts nproxy and runs the phases of d in two cycles of d/2: every
// transfer must be byte-exact and none may fail, and nproxy's usage after
// the second cycle must be what it was after the first (checkUsage). The
// cycles are alike, each reaching the top concurrency with the same sizes,
// so memory the first one needed at its peak is not taken for growth.
func (rl relay) run(t *testing.T, r *row, d time.Duration) *tally {
	p := startNproxy(t, []int{rl.port}, rl.args...)
	idle := p.usage(t)
	ps := phases(d/2, rl.limit)
	tl := &tally{}
	warm := cycles(t, p, idle, func(seed uint64) { rl.load.run(ps, tl, seed) })
	r.add(t, "%v (%d..%d clients at once, up to %s each)", tl, ps[0].conns, ps[len(ps)-1].conns, mib(ps[0].maxSize))
	tl.exact(t)
	checkUsage(t, r, p, idle, warm)
	return tl
}

func relayTCP(t *testing.T, r *row, d time.Duration) {
	echo := startEcho(t)
	in := nproxytest.FreePort(t)
	relay{args: []string{"--in", tcpSpec(in), "--out", tcpSpec(echo.port())}, port: in,
		load: load{dial: dialTCP(in), plan: standard}, limit: 1000}.run(t, r, d)
}

func relayNoSplice(t *testing.T, r *row, d time.Duration) {
	echo := startEcho(t)
	in := nproxytest.FreePort(t)
	relay{args: []string{"--no-splice", "--in", tcpSpec(in), "--out", tcpSpec(echo.port())}, port: in,
		load: load{dial: dialTCP(in), plan: standard}, limit: 1000}.run(t, r, d)
}

// relaySSL terminates TLS: Go's TLS clients, verifying nproxy's certificate,
// half-close with close_notify.
func relaySSL(t *testing.T, r *row, d time.Duration) {
	certs := ssltest.New(t)
	echo := startEcho(t)
	in := nproxytest.FreePort(t)
	spec := fmt.Sprintf("type=ssl,host=127.0.0.1,port=%d,SSL_cert_file=%s,SSL_key_file=%s", in, certs.ServerCert, certs.ServerKey)
	relay{args: []string{"--in", spec, "--out", tcpSpec(echo.port())}, port: in,
		load: load{dial: dialTLS(t, certs.CA, in), plan: standard}, limit: 1000}.run(t, r, d)
}

func dialTLS(t *testing.T, caFile string, port int) func() (net.Conn, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	return func() (net.Conn, error) { return d.Dial("tcp", addr(port)) }
}

// relayConnect goes through tinyproxy with CONNECT. tinyproxy tears a tunnel
// down at the client's EOF, so no client half-closes early; the clients
// stop at 256, a quarter of its MaxClients, since its threads outlive the
// tunnels they served for a while.
func relayConnect(t *testing.T, r *row, d time.Duration) {
	echo := startEcho(t)
	_, tpPort := startTinyproxy(t, echo.port())
	in := nproxytest.FreePort(t)
	out := fmt.Sprintf("type=connect,host=127.0.0.1,port=%d,proxy_host=127.0.0.1,proxy_port=%d,timeout=10", echo.port(), tpPort)
	relay{args: []string{"--in", tcpSpec(in), "--out", out}, port: in,
		load: load{dial: dialTCP(in), plan: notEarly}, limit: 256}.run(t, r, d)
}

// relayDual runs dual with a 0.5 s timeout: one client in ten stays silent
// for 1.5 s and must reach server_first's echo; the others speak at once.
// At 1000 clients on two cores, the suite's own clients may be scheduled
// too late to speak within the timeout; they count as silent, and dual may
// route them either way. So server_first must get every silent client and
// no more than the clients that were late to speak.
func relayDual(t *testing.T, r *row, d time.Duration) {
	talker, silent := startEcho(t), startEcho(t)
	in := nproxytest.FreePort(t)
	const timeout = 500 * time.Millisecond
	spec := fmt.Sprintf("type=dual,host=127.0.0.1,port=%d,timeout=%g,client_first.type=tcp,client_first.host=127.0.0.1,client_first.port=%d,"+
		"server_first.type=tcp,server_first.host=127.0.0.1,server_first.port=%d", in, timeout.Seconds(), talker.port(), silent.port())
	var quiet, late atomic.Int64
	plan := func(rng *rand.Rand, maxSize int64) transfer {
		tr := standard(rng, maxSize)
		if rng.IntN(10) == 0 {
			tr.quiet = 3 * timeout
			quiet.Add(1)
		}
		return tr
	}
	dial := func() (net.Conn, error) {
		// From before the connect: nproxy may accept before this
		// goroutine runs again.
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr(in), 10*time.Second)
		if err != nil {
			return nil, err
		}
		return &timedConn{TCPConn: c.(*net.TCPConn), dialed: start, limit: timeout, late: &late}, nil
	}
	tl := relay{args: []string{"--in", spec, "--out", "type=dummy"}, port: in,
		load: load{dial: dial, plan: plan}, limit: 1000}.run(t, r, d)
	r.add(t, "routed to server_first: %d, with %d silent clients and %d late to speak (%d silent or late); to client_first: %d",
		silent.accepted.Load(), quiet.Load(), late.Load()-quiet.Load(), late.Load(), talker.accepted.Load())
	if silent.accepted.Load() < quiet.Load() || silent.accepted.Load() > late.Load() ||
		silent.accepted.Load()+talker.accepted.Load() != tl.conns.Load() {
		t.Error("dual routed clients to the wrong server")
	}
}

// timedConn notes in late whether its first write came more than limit
// after the dial began.
type timedConn struct {
	*net.TCPConn
	dialed time.Time
	limit  time.Duration
	late   *atomic.Int64
	once   sync.Once
}

func (c *timedConn) Write(b []byte) (int, error) {
	c.once.Do(func() {
		if time.Since(c.dialed) > c.limit {
			c.late.Add(1)
		}
	})
	return c.TCPConn.Write(b)
}

// startTinyproxy runs tinyproxy in the foreground on a free port, allowing
// CONNECT to port only, for up to 1024 clients at once, and returns it
// with its port.
func startTinyproxy(t *testing.T, port int) (*proc, int) {
	bin := nproxytest.Command(t, "tinyproxy")
	dir := t.TempDir()
	listen := nproxytest.FreePort(t)
	conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 60\nMaxClients 1024\nLogLevel Warning\nLogFile %q\nPidFile %q\nDisableViaHeader Yes\nConnectPort %d\n",
		listen, filepath.Join(dir, "tinyproxy.log"), filepath.Join(dir, "tinyproxy.pid"), port)
	file := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, bin, "-d", "-c", file)
	p.waitFor(t, "tinyproxy to listen", func() bool { return nproxytest.Listening(listen) })
	return p, listen
}
