package main

// The TLS termination scenario (issue 5): nproxy's ssl in → tcp out against
// stunnel4 and haproxy's ssl, both OpenSSL. Every peer serves the same
// throw-away certificate and forwards plain TCP to an upstream on 127.0.0.1;
// the clients are Go crypto/tls.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

const (
	scTLS           = "tls"
	scTLSHandshakes = "tls-handshakes"
	scTLSResumed    = "tls-resumed"
	scTLSBulk       = "tls-bulk"
	scTLSIdle       = "tls-idle"
)

// tlsFiles is the throw-away PKI every peer serves: a CA, and a server
// certificate for localhost and 127.0.0.1 signed by it, both ECDSA P-256.
type tlsFiles struct {
	dir, ca, cert, key string
	pem                string // certificate then key, the one file haproxy takes
	roots              *x509.CertPool
}

// tlsMaterial makes the certificates once per run, in a directory whose
// name starts with "nproxy" so that the report shows it as $TMP/nproxy-tls.
func tlsMaterial(e *env) (*tlsFiles, error) {
	dir := filepath.Join(e.logDir, "nproxy-tls")
	f := &tlsFiles{dir: dir, ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"),
		key: filepath.Join(dir, "key.pem"), pem: filepath.Join(dir, "cert-key.pem")}
	if _, err := os.Stat(f.ca); err != nil {
		if err := writeTLSFiles(f); err != nil {
			return nil, fmt.Errorf("test certificate: %w", err)
		}
	}
	b, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, err
	}
	f.roots = x509.NewCertPool()
	if !f.roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", f.ca)
	}
	return f, nil
}

// writeTLSFiles writes the CA last: its presence means every file is there.
func writeTLSFiles(f *tlsFiles) error {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nproxy bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pemBlock("CERTIFICATE", der)
	keyPEM := pemBlock("PRIVATE KEY", keyDER)
	for _, w := range []struct {
		path string
		data []byte
	}{{f.cert, certPEM}, {f.key, keyPEM}, {f.pem, append(append([]byte{}, certPEM...), keyPEM...)},
		{f.ca, pemBlock("CERTIFICATE", caDER)}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// tlsCast is the scenario's peers: each terminates TLS on its listen port
// and forwards plain TCP to the target.
func tlsCast(e *env) []*peer {
	f, ferr := tlsMaterial(e)
	if f == nil {
		f = &tlsFiles{}
	}
	itoa := strconv.Itoa
	haproxyEnv := func(l, t int) []string { return append(haproxyPorts(l, t), "NP_PEM="+f.pem) }
	peers := []*peer{
		{name: "nproxy-ssl", desc: "nproxy, one loop: ssl in (crypto/tls as a memory-BIO engine: handshakes off the loop, records sealed and opened on it) → tcp out",
			argv: func(l, t int) []string {
				return []string{e.nproxyBin,
					"--in", "type=ssl,host=127.0.0.1,port=" + itoa(l) + ",SSL_cert_file=" + f.cert + ",SSL_key_file=" + f.key,
					"--out", "type=tcp,host=127.0.0.1,port=" + itoa(t)}
			}},
		{name: "stunnel4", desc: "stunnel 5.68 (OpenSSL 3.0), one thread per connection, its defaults " +
			"(bench/peers/tls-stunnel.conf, filled in and written to a temporary file per run)",
			argv: func(l, t int) []string { return []string{"stunnel4", stunnelConfig(e, f, l, t)} }},
		{name: "haproxy-ssl-nbthread1", desc: "haproxy 2.6 (OpenSSL 3.0) tcp mode, `bind ... ssl crt`, nbthread 1, " +
			"Mozilla intermediate TLS settings (bench/peers/tls-haproxy-nbthread1.cfg)",
			argv: haproxyArgv(e, "tls-haproxy-nbthread1.cfg"), env: haproxyEnv},
		{name: "haproxy-ssl-default", desc: "the same with haproxy's default threads, 2 here (bench/peers/tls-haproxy-default.cfg)",
			argv: haproxyArgv(e, "tls-haproxy-default.cfg"), env: haproxyEnv},
	}
	if ferr != nil {
		for _, p := range peers {
			p.skip = ferr.Error()
		}
	}
	checkPeers(e, peers)
	return peers
}

// stunnelConfig fills in bench/peers/tls-stunnel.conf (stunnel has no
// variables of its own) and returns the file written. checkPeers calls argv
// with dummy ports too; the file it gets is never used.
func stunnelConfig(e *env, f *tlsFiles, listen, target int) string {
	path := filepath.Join(f.dir, "stunnel-"+strconv.Itoa(listen)+".conf")
	tmpl, err := os.ReadFile(filepath.Join(e.root, "bench/peers/tls-stunnel.conf"))
	if err != nil {
		return path // stunnel then says the file is missing
	}
	vars := map[string]string{"NP_LISTEN": strconv.Itoa(listen), "NP_TARGET": strconv.Itoa(target),
		"NP_CERT": f.cert, "NP_KEY": f.key}
	os.WriteFile(path, []byte(os.Expand(string(tmpl), func(k string) string { return vars[k] })), 0o600)
	return path
}

func runTLS(e *env, peers []*peer) ([]*table, error) {
	f, err := tlsMaterial(e)
	if err != nil {
		return nil, err
	}
	hs, err1 := tlsHandshakes(e, peers, f)
	resumed, err2 := tlsResumed(e, peers, f)
	bulk, err3 := tlsBulk(e, peers, f)
	idle, err4 := tlsIdle(e, peers, f)
	var tables []*table
	for _, t := range []*table{hs, resumed, bulk, idle} {
		if t != nil {
			tables = append(tables, t)
		}
	}
	return tables, errors.Join(err1, err2, err3, err4)
}

// tlsClient is the load generators' TLS configuration. No session cache, so
// every handshake is a full one. It offers X25519 only: Go's default puts
// the X25519MLKEM768 hybrid first, which nproxy's Go server would pick and
// the OpenSSL 3.0 peers cannot, so each peer would do a different key
// exchange. verify off skips checking the chain, which costs only the client
// (it shares the cores with the relay); the relay's work is the same.
func tlsClient(f *tlsFiles, verify bool) *tls.Config {
	return &tls.Config{ServerName: "localhost", RootCAs: f.roots, InsecureSkipVerify: !verify,
		CurvePreferences: []tls.CurveID{tls.X25519}}
}

// dialTLS connects and completes a handshake, with a 2 s deadline left set.
func dialTLS(addr string, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// tlsEchoed opens a TLS connection that has echoed 64 bytes once.
func tlsEchoed(addr string, cfg *tls.Config, buf []byte) (*tls.Conn, error) {
	c, err := dialTLS(addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := echoOnce(c, buf); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// negotiated says what a handshake agreed on, for the table notes.
func negotiated(s tls.ConnectionState) string {
	return fmt.Sprintf("negotiated %s, %s, %v", tls.VersionName(s.Version), tls.CipherSuiteName(s.CipherSuite), s.CurveID)
}

func tlsHandshakes(e *env, peers []*peer, f *tlsFiles) (*table, error) {
	t := newTable(scTLSHandshakes, "TLS termination: full handshakes", fmt.Sprintf(
		"%d concurrent Go clients, as in connrate, each in a loop: connect, full TLS handshake (no session "+
			"resumption, certificate chain not checked, X25519 offered), write 64 bytes, read the echo, close "+
			"(close_notify); %v per round, %s, peers interleaved, a fresh relay per measurement. Upstream: evio "+
			"echo. Relay CPU is utime+stime from /proc/PID/stat over the window, divided by the handshakes. Before each "+
			"measurement a verifying client checks the chain and records what was negotiated (notes).",
		e.cfg.concurrency, e.cfg.rateDur, rounds(e.cfg.rounds)), peers, scTLSHandshakes,
		higher("handshakes", "1/s"), lower("relay CPU", "µs/handshake"))
	return t, tlsHandshakeRounds(e, peers, f, t, false)
}

// tlsResumed is tlsHandshakes with session resumption: every client offers
// the ticket of the peer's last handshake (each peer's defaults: crypto/tls's
// tickets for nproxy, OpenSSL's for haproxy and stunnel), so what is
// measured is the abbreviated handshake, still with an X25519 exchange
// (TLS 1.3's psk_dhe_ke, which Go's client asks for).
func tlsResumed(e *env, peers []*peer, f *tlsFiles) (*table, error) {
	t := newTable(scTLSResumed, "TLS termination: resumed handshakes", fmt.Sprintf(
		"As the full handshakes, but each client offers a session ticket: the clients share a session cache, "+
			"primed by the verifying client's handshake, and each handshake's new ticket replaces the cached one. "+
			"Relay CPU is divided by the handshakes; the notes give how many of them resumed (a handshake that did not "+
			"is a full one, and counts as a failure). %d concurrent clients, %v per round, %s, peers interleaved, a "+
			"fresh relay per measurement.", e.cfg.concurrency, e.cfg.rateDur, rounds(e.cfg.rounds)), peers, scTLSResumed,
		higher("resumed handshakes", "1/s"), lower("relay CPU", "µs/handshake"))
	return t, tlsHandshakeRounds(e, peers, f, t, true)
}

// tlsHandshakeRounds fills t, whose metrics are the handshake rate and the
// relay's CPU per handshake, with full or resumed handshakes.
func tlsHandshakeRounds(e *env, peers []*peer, f *tlsFiles, t *table, resume bool) error {
	rate, cpu := t.metrics[0], t.metrics[1]
	echo, err := startEcho(e)
	if err != nil {
		return err
	}
	defer echo.stop()
	for round := 0; round < e.cfg.rounds; round++ {
		eachRelay(e, peers, t.key, t, round, echo.listen, func(r *running) error {
			addr := "127.0.0.1:" + strconv.Itoa(r.listen)
			verify, fast := tlsClient(f, true), tlsClient(f, false)
			if resume {
				verify.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				fast.ClientSessionCache = verify.ClientSessionCache
			}
			c, err := tlsEchoed(addr, verify, make([]byte, len(ping)))
			if err != nil {
				return fmt.Errorf("verifying client: %w", err)
			}
			t.note(r.p.name, "%s", negotiated(c.ConnectionState()))
			c.Close()
			var resumed atomic.Int64
			cpu0 := cpuSeconds(r.pid())
			ok, fails, firstErr := clientLoop(e.cfg.concurrency, e.cfg.rateDur, func(buf []byte) error {
				c, err := tlsEchoed(addr, fast, buf)
				if err != nil {
					return err
				}
				c.Close()
				if c.ConnectionState().DidResume {
					resumed.Add(1)
				} else if resume {
					return errors.New("not resumed")
				}
				return nil
			})
			used := cpuSeconds(r.pid()) - cpu0
			hps := float64(ok) / e.cfg.rateDur.Seconds()
			rate.add(r.p.name, hps)
			if ok > 0 {
				cpu.add(r.p.name, used/float64(ok)*1e6)
			}
			if resume {
				t.note(r.p.name, "round %d: %d of %d handshakes resumed", round+1, resumed.Load(), ok+fails)
			}
			logf("   %s round %d %-22s %7.0f handshakes/s  %6.0f µs CPU each  (%d failed, %d resumed)",
				t.key, round+1, r.p.name, hps, used/float64(max(ok, 1))*1e6, fails, resumed.Load())
			if fails > 0 {
				return fmt.Errorf("%d handshakes failed in round %d, first: %v", fails, round+1, firstErr)
			}
			return nil
		})
	}
	return nil
}

// bulkChunk is what the bulk writers send: zeros, so never pourByte first.
var bulkChunk = make([]byte, 64<<10)

// pourByte, sent first by a client, asks the bulk upstream to send instead
// of receiving.
const pourByte = 'D'

// bulkUpstream discards and counts what it receives (client → server), or,
// asked by pourByte, sends as fast as it can (server → client).
type bulkUpstream struct {
	ln       net.Listener
	received atomic.Int64
}

func startBulkUpstream() (*bulkUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(freePort()))
	if err != nil {
		return nil, err
	}
	u := &bulkUpstream{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u, nil
}

func (u *bulkUpstream) port() int { return u.ln.Addr().(*net.TCPAddr).Port }

func (u *bulkUpstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // whatever the relay does, this ends
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		return
	}
	if first[0] == pourByte {
		pour(c)
		return
	}
	u.received.Add(1)
	discard(c, &u.received)
}

// pour writes bulkChunk until the connection fails or is closed.
func pour(c net.Conn) {
	for {
		if _, err := c.Write(bulkChunk); err != nil {
			return
		}
	}
}

// discard reads until the connection fails or is closed, counting bytes.
func discard(c net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		k, err := c.Read(buf)
		n.Add(int64(k))
		if err != nil {
			return
		}
	}
}

// tlsBulkWindow is the measured time of one bulk test: 1.5 s quick, 2 s
// full (iperf3's -t of the plain bulk scenario, at least 1.5 s).
func tlsBulkWindow(e *env) time.Duration {
	return max(1500*time.Millisecond, time.Duration(e.cfg.bulkSecs)*time.Second)
}

func tlsBulk(e *env, peers []*peer, f *tlsFiles) (*table, error) {
	up, upCPU := higher("client → server", "MB/s"), lower("relay CPU, up", "s/GB")
	down, downCPU := higher("server → client", "MB/s"), lower("relay CPU, down", "s/GB")
	window := tlsBulkWindow(e)
	t := newTable(scTLSBulk, "TLS termination: bulk throughput", fmt.Sprintf(
		"One TLS connection per test. Client → server: a Go TLS client writes 64 KiB at a time as fast as it can; "+
			"the upstream (in the harness) reads and discards, and MB/s (10⁶ bytes) is what it counted. Server → client: "+
			"the upstream writes as fast as it can and the Go client reads and counts. %v measured after 200 ms of warm-up. "+
			"Relay CPU is utime+stime from /proc/PID/stat over the same window, divided by the GB relayed. "+
			"%s, each direction a measurement of its own with a fresh relay, peers interleaved.",
		window, rounds(e.cfg.rounds)), peers, scTLSBulk, up, upCPU, down, downCPU)
	u, err := startBulkUpstream()
	if err != nil {
		return t, err
	}
	defer u.ln.Close()
	dirs := []struct {
		name      string
		down      bool
		rate, cpu *metric
	}{{"up", false, up, upCPU}, {"down", true, down, downCPU}}
	for round := 0; round < e.cfg.rounds; round++ {
		for _, d := range dirs {
			eachRelay(e, peers, scTLSBulk, t, round, u.port(), func(r *running) error {
				mbps, perGB, state, err := tlsBulkOnce(r, f, u, d.down, window)
				if err != nil {
					return fmt.Errorf("%s: %w", d.name, err)
				}
				t.note(r.p.name, "%s", state)
				d.rate.add(r.p.name, mbps)
				d.cpu.add(r.p.name, perGB)
				logf("   %s round %d %-4s %-22s %8.1f MB/s  %5.2f s CPU/GB", scTLSBulk, round+1, d.name, r.p.name, mbps, perGB)
				return nil
			})
		}
	}
	return t, nil
}

// tlsBulkOnce runs one bulk test through r and returns MB/s, the relay's
// CPU seconds per GB and what the handshake negotiated.
func tlsBulkOnce(r *running, f *tlsFiles, u *bulkUpstream, down bool, window time.Duration) (float64, float64, string, error) {
	c, err := dialTLS("127.0.0.1:"+strconv.Itoa(r.listen), tlsClient(f, true))
	if err != nil {
		return 0, 0, "", err
	}
	state := negotiated(c.ConnectionState())
	const warm = 200 * time.Millisecond
	c.SetDeadline(time.Now().Add(warm + window + 5*time.Second))
	counter := &u.received
	done := make(chan struct{})
	if down {
		if _, err := c.Write([]byte{pourByte}); err != nil {
			c.Close()
			return 0, 0, "", err
		}
		counter = new(atomic.Int64)
		go func() { defer close(done); discard(c, counter) }()
	} else {
		go func() { defer close(done); pour(c) }()
	}
	time.Sleep(warm)
	n0, cpu0, t0 := counter.Load(), cpuSeconds(r.pid()), time.Now()
	time.Sleep(window)
	n1, cpu1, el := counter.Load(), cpuSeconds(r.pid()), time.Since(t0)
	c.NetConn().Close() // no close_notify: it would wait behind a blocked write
	<-done
	gb := float64(n1-n0) / 1e9
	if gb <= 0 {
		return 0, 0, state, errors.New("nothing relayed in the window")
	}
	return gb * 1e3 / el.Seconds(), (cpu1 - cpu0) / gb, state, nil
}

// tlsIdleRounds is at most 2: every round costs each peer 5,000 handshakes,
// and in trial runs the memory per connection moved by under 5% between
// rounds while a third round took the full run past its 4 minutes.
func tlsIdleRounds(e *env) int { return min(e.cfg.idleRounds, 2) }

func tlsIdle(e *env, peers []*peer, f *tlsFiles) (*table, error) {
	n := e.cfg.idleConns
	limit := 2 * e.cfg.idleLimit
	rss, pss := lower("RSS", "KiB/conn"), lower("PSS", "KiB/conn")
	fds, leak := lower("fds", "fds/conn"), info("fds left after close", "fds")
	t := newTable(scTLSIdle, fmt.Sprintf("TLS termination: idle cost, %d TLS connections", n), fmt.Sprintf(
		"As the plain idle scenario, with TLS on the client side: a fresh relay, one warm-up connection, then %d TLS "+
			"connections, each a full handshake that echoes 64 bytes once, opened by %d openers in parallel (each "+
			"waits for its echo before the next), then held idle. Growth of the relay's VmRSS, Pss (smaps_rollup) and open fds, read from /proc, divided by the "+
			"connections; then all are reset and the fds still open beyond the baseline after up to 2 s are counted. "+
			"A relay gets %v to open them. Upstream: evio echo. %s.",
		n, idleOpeners, limit, rounds(tlsIdleRounds(e))), peers, scTLSIdle, rss, pss, fds, leak)
	echo, err := startEcho(e)
	if err != nil {
		return t, err
	}
	defer echo.stop()
	for round := 0; round < tlsIdleRounds(e); round++ {
		eachRelay(e, peers, scTLSIdle, t, round, echo.listen, func(r *running) error {
			return tlsIdleOnce(r, f, n, limit, t)
		})
	}
	return t, nil
}

func tlsIdleOnce(r *running, f *tlsFiles, n int, limit time.Duration, t *table) error {
	addr := "127.0.0.1:" + strconv.Itoa(r.listen)
	cfg := tlsClient(f, false)
	open := func(buf []byte) (*tls.Conn, error) { return tlsEchoed(addr, cfg, buf) }
	warm, err := open(make([]byte, len(ping)))
	if err != nil {
		return fmt.Errorf("warm-up connection: %w", err)
	}
	warm.Close()
	return holdIdle(r, t, n, limit, idleOpeners, open, (*tls.Conn).NetConn)
}

// idleOpeners open the idle TLS connections in parallel, each checked to
// echo before its opener opens the next: one full handshake at a time would
// take most of the time allowed (stunnel starts a thread for each), and 4 in
// flight are nothing to any listen backlog.
const idleOpeners = 4
