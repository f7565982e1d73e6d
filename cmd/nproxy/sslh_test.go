package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/nproxy/nproxy/nproxytest"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/dual/dualtest"
)

// Most of these tests run the real binary, nproxyBin, which the package's
// TestMain builds once; they see what a user sees.

// fakeLookup resolves the names the option tests use without DNS.
func fakeLookup(host string) ([]string, error) {
	switch host {
	case "localhost":
		return []string{"::1", "127.0.0.1"}, nil
	case "zlonk.example":
		return []string{"192.0.2.1"}, nil
	}
	return nil, errors.New("no such host")
}

// TestSSLHOptions checks what the options become: defaults, bundled -v,
// a fractional timeout, aliases, IPv6, and names resolved for the
// duplicate check.
func TestSSLHOptions(t *testing.T) {
	o, err := parseSSLH([]string{"-p", "0.0.0.0:443", "-vv", "--verbose", "-t", "0.25", "--https", "8443"}, io.Discard, fakeLookup)
	if err != nil {
		t.Fatal(err)
	}
	want := sslhOptions{
		Listen: hostPort{"0.0.0.0", 443}, SSH: hostPort{"localhost", 22}, SSL: hostPort{"localhost", 8443},
		Timeout: 250 * time.Millisecond, SSHProbe: true, Verbosity: 3,
	}
	if *o != want {
		t.Errorf("got %+v, want %+v", *o, want)
	}
	if in := o.in(); in.Timeout != 250*time.Millisecond || len(in.Routes) != 1 || in.Routes[0].Out != in.ServerFirst {
		t.Errorf("dual in %+v: the ssh probe must lead to the ssh server", in)
	}
	o, err = parseSSLH([]string{"--port=[::1]:4443", "--ssh", "zlonk.example:2222", "-l", "127.0.0.1:443", "--no-ssh-probe"}, io.Discard, fakeLookup)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != (hostPort{"::1", 4443}) || o.SSH != (hostPort{"zlonk.example", 2222}) || o.SSHProbe || o.Timeout != 2*time.Second {
		t.Errorf("got %+v", *o)
	}
	if in := o.in(); in.Host != "::1" || in.Port != 4443 || len(in.Routes) != 0 {
		t.Errorf("dual in %+v", in)
	}
	if _, err := parseSSLH([]string{"-l", "8443", "-s", "nowhere.example:22"}, io.Discard, fakeLookup); err == nil ||
		!strings.Contains(err.Error(), "--ssh nowhere.example:22: can't resolve nowhere.example") {
		t.Errorf("unresolvable --ssh: %v", err)
	}
}

// TestSSLHChecks: the script's checks, with its messages, before anything
// listens; exit status 2. An address in use is exit status 2 too.
func TestSSLHChecks(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Options --ssl and --port are identical! (127.0.0.1:443)\n"}, // the script's defaults clash
		{[]string{"-l", "8443", "-t", "0"}, "--timeout <seconds> must be a positive number (possibly fractional)\n"},
		{[]string{"-l", "8443", "-t", "-1.5"}, "--timeout <seconds> must be a positive number (possibly fractional)\n"},
		{[]string{"-l", "8443", "-t", "NaN"}, "--timeout <seconds> must be a positive number (possibly fractional)\n"},
		{[]string{"-s", "22", "-l", "22"}, "--ssh and -ssl must point to different servers\n"},
		{[]string{"-s", "localhost:22", "--https", "127.0.0.1:22"}, "Options --ssl and --ssh are identical! (127.0.0.1:22)\n"},
		{[]string{"-p", "8443", "--ssl", "localhost:8443"}, "Options --ssl and --port are identical! (127.0.0.1:8443)\n"},
		{[]string{"-p", "127.0.0.1:2222", "-s", "2222", "-l", "8443"}, "Options --ssh and --port are identical! (127.0.0.1:2222)\n"},
		{[]string{"-p", "[::1]:4443", "-s", "[::1]:4443", "-l", "8443"}, "Options --ssh and --port are identical! ([::1]:4443)\n"},
		{[]string{"-l", "8443", "-p", "443x"}, `--port 443x: port "443x" must be a number in 1-65535`},
		{[]string{"-l", "8443", "-t", "soon"}, "Usage: sslh [-v]"},
		{[]string{"--zlonk"}, "flag provided but not defined: -zlonk"},
		{[]string{"-l", "8443", "extra"}, `unexpected argument "extra"`},
		{[]string{"-p", busy.Addr().String(), "-l", "127.0.0.1:1"}, "can't listen on 127.0.0.1 port"},
	}
	for _, c := range cases {
		code, stderr := runNproxy(t, nil, append([]string{"sslh"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("nproxy sslh %q: exit status %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	out, err := exec.Command(nproxyBin, "sslh", "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "nproxy sslh ") {
		t.Errorf("--version: %v, %q", err, out)
	}
	out, err = exec.Command(nproxyBin, "sslh", "-h").Output()
	if err != nil || !strings.Contains(string(out), "--no-ssh-probe") {
		t.Errorf("-h: %v, %q", err, out)
	}
}

// sshEcho runs "echo word" over ssh and fails t unless it works within d.
func sshEcho(t *testing.T, cmd *exec.Cmd, word string) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != word+"\n" {
		t.Fatalf("%s: %v, output %q", strings.Join(cmd.Args, " "), err, out)
	}
	return time.Since(start)
}

// TestSSLHRealServers puts OpenSSH's sshd and openssl s_server behind
// nproxy sslh: ssh and openssl s_client both get through the one port.
// OpenSSH's client speaks first (it sends "SSH-2.0-..." without waiting
// for the server), so the ssh probe is what sends it to sshd, at once.
func TestSSLHRealServers(t *testing.T) {
	sshd := dualtest.StartSSHD(t)
	tlsd := dualtest.StartTLSServer(t)
	port := dualtest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	nproxy := startNproxy(t, nil, []int{port}, "sslh", "-vvv", "-t", "2", "-p", addr, "-s", sshd.Addr, "-l", tlsd.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 {
		sshEcho(t, sshd.Client(ctx, addr, "echo", "zlonk"), "zlonk")
		if got := dualtest.TLSRoundTrip(t, addr, "zowie"); got != "eiwoz" {
			t.Errorf("openssl s_client through sslh got %q", got)
		}
	}
	// The probe, not the 2 s timeout, sent both ssh clients to sshd (the
	// log says so; a time bound would not hold on a loaded machine).
	if log := nproxy.stderr.String(); strings.Count(log, "goes to probe ssh") != 2 || strings.Contains(log, "(timeout)") ||
		!strings.Contains(log, "goes to client_first") {
		t.Errorf("the log does not show both routes:\n%s", log)
	}
}

// TestSSLHTimeoutRoute shows how the script's rule alone (--no-ssh-probe)
// handles ssh: OpenSSH's client, speaking first, lands on the SSL server
// and fails; a client that waits for the server's banner, as old clients
// did (here ssh behind a ProxyCommand that holds its bytes back past the
// timeout), goes to sshd on the timeout and works.
func TestSSLHTimeoutRoute(t *testing.T) {
	nproxytest.Command(t, "socat")
	sshd := dualtest.StartSSHD(t)
	tlsd := dualtest.StartTLSServer(t)
	port := dualtest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	nproxy := startNproxy(t, nil, []int{port}, "sslh", "-vvv", "--no-ssh-probe", "-t", "0.5", "-p", addr, "-s", sshd.Addr, "-l", tlsd.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := sshd.Client(ctx, addr, "echo", "zlonk").CombinedOutput()
	if err == nil {
		t.Errorf("ssh speaking first got through to sshd without the probe: %q", out)
	}
	t.Logf("ssh speaking first, without the probe: %v: %s", err, out)
	if log := nproxy.stderr.String(); !strings.Contains(log, "goes to client_first") {
		t.Errorf("ssh did not go to client_first:\n%s", log)
	}
	held := fmt.Sprintf("sh -c '{ sleep 1; exec cat; } | exec socat STDIO TCP:%s'", addr)
	if d := sshEcho(t, sshd.ClientVia(ctx, held, "echo", "zowie"), "zowie"); d < 900*time.Millisecond {
		t.Errorf("the held-back ssh took only %v", d)
	}
	if log := nproxy.stderr.String(); !strings.Contains(log, "goes to server_first (timeout)") {
		t.Errorf("the held-back ssh did not go to server_first on the timeout:\n%s", log)
	}
	if got := dualtest.TLSRoundTrip(t, addr, "crunch"); got != "hcnurc" {
		t.Errorf("openssl s_client through sslh got %q", got)
	}
}

// TestSSLHSilentCrowd: through the command, 1,000 silent clients wait on
// the 2 s timeout while openssl s_client handshakes and round-trips a line:
// it does not wait for them.
func TestSSLHSilentCrowd(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	sshd := dualtest.StartSSHD(t)
	tlsd := dualtest.StartTLSServer(t)
	port := dualtest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startNproxy(t, nil, []int{port}, "sslh", "-p", addr, "-s", sshd.Addr, "-l", tlsd.Addr)
	start := time.Now()
	var silent []net.Conn
	for range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	t0 := time.Now()
	if got := dualtest.TLSRoundTrip(t, addr, "zlonk"); got != "knolz" {
		t.Fatalf("openssl s_client got %q", got)
	}
	rtt := time.Since(t0)
	t.Logf("1,000 silent clients in %v; s_client round trip %v", t0.Sub(start), rtt)
	if time.Since(start) > 2*time.Second {
		t.Fatal("too slow to prove anything: the silent clients' timeout passed")
	}
	if rtt > time.Second {
		t.Errorf("s_client took %v while 1,000 clients waited", rtt)
	}
	// The others leave before their timeout (sshd need not fork for them);
	// the first then meets sshd, which speaks first.
	for _, c := range silent[1:] {
		c.Close()
	}
	silent[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(silent[0]).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-OpenSSH") {
		t.Errorf("silent client read %q, %v", banner, err)
	}
}

// TestDualFromConfig runs a dual proxy from a YAML file (with probes) and
// from --in/--out with dotted keys, through the command.
func TestDualFromConfig(t *testing.T) {
	sshd := dualtest.StartSSHD(t)
	tlsd := dualtest.StartTLSServer(t)
	sshHost, sshPort, _ := net.SplitHostPort(sshd.Addr)
	tlsHost, tlsPort, _ := net.SplitHostPort(tlsd.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	port := dualtest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	yaml := fmt.Sprintf(`proxies:
  - in:
      type: dual
      host: 127.0.0.1
      port: %d
      timeout: 5
      server_first: {type: tcp, host: %s, port: %s}
      client_first: {type: tcp, host: 127.0.0.1, port: %d}
      probes:
        - {type: tls, out: {type: tcp, host: %s, port: %s}}
        - {type: ssh, out: server_first}
    out: {type: dummy}
`, port, sshHost, sshPort, dualtest.FreePort(t), tlsHost, tlsPort)
	file := filepath.Join(t.TempDir(), "dual.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startNproxy(t, nil, []int{port}, "-vvv", "-c", file)
	// Both reach their servers through probes: neither waits 5 s (the log
	// says which route each took; a time bound would not hold on a loaded
	// machine), and client_first, where nothing listens, is never used.
	sshEcho(t, sshd.Client(ctx, addr, "echo", "zlonk"), "zlonk")
	if got := dualtest.TLSRoundTrip(t, addr, "zowie"); got != "eiwoz" {
		t.Errorf("s_client got %q", got)
	}
	if log := p.stderr.String(); !strings.Contains(log, "goes to probe ssh") || !strings.Contains(log, "goes to probe tls") ||
		strings.Contains(log, "(timeout)") {
		t.Errorf("the log does not show both probes' routes:\n%s", log)
	}

	port = dualtest.FreePort(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	spec := fmt.Sprintf("type=dual,host=127.0.0.1,port=%d,timeout=0.3,server_first.type=tcp,server_first.host=%s,server_first.port=%s,client_first.type=tcp,client_first.host=%s,client_first.port=%s",
		port, sshHost, sshPort, tlsHost, tlsPort)
	startNproxy(t, nil, []int{port}, "--in", spec, "--out", "type=dummy")
	if got := dualtest.TLSRoundTrip(t, addr, "crunch"); got != "hcnurc" {
		t.Errorf("s_client got %q", got)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if banner, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("a silent client read %q, %v", banner, err)
	}
}

// BenchmarkSSLH measures client-first clients through an sslh — connect,
// send a line, read its echo, close — alone and while silent clients wait
// on the timeout, and reports connections per second and latency
// percentiles. It runs nproxy sslh (built without -race) unless
// SSLH_BENCH_CMD gives another command, with {listen}, {ssh} and {ssl} in
// place of the addresses, for instance Net::Proxy's script:
//
//	SSLH_BENCH_CMD='perl sslh -p {listen} -s {ssh} -l {ssl} -t 30' SSLH_BENCH_SILENT=0,1 \
//	  go test -run XXX -bench SSLH ./cmd/nproxy
//
// (with PERL5LIB pointing at Net::Proxy), or Debian's sslh, whose
// unmatched clients go to the anyprot server:
//
//	SSLH_BENCH_CMD='sslh-select -f -n -p {listen} --ssh {ssh} --tls {ssl} --anyprot {ssl} -t 30'
//
// The client is sequential, so conn/s is the inverse of the mean latency.
func BenchmarkSSLH(b *testing.B) {
	ssh := startLineServer(b, "SSH-2.0-bench\n")
	ssl := startLineServer(b, "")
	template := os.Getenv("SSLH_BENCH_CMD")
	if template == "" {
		bin := filepath.Join(b.TempDir(), "nproxy")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("building nproxy: %v\n%s", err, out)
		}
		template = bin + " sslh -p {listen} -s {ssh} -l {ssl} -t 30"
	}
	silentCounts := []string{"0", "1000"}
	if s := os.Getenv("SSLH_BENCH_SILENT"); s != "" {
		silentCounts = strings.Split(s, ",")
	}
	for _, n := range silentCounts {
		b.Run("silent="+n, func(b *testing.B) {
			silent, err := strconv.Atoi(n)
			if err != nil {
				b.Fatal(err)
			}
			listen := fmt.Sprintf("127.0.0.1:%d", dualtest.FreePort(b))
			args := strings.Fields(strings.NewReplacer("{listen}", listen, "{ssh}", ssh, "{ssl}", ssl).Replace(template))
			startBenchDaemon(b, listen, args)
			for range silent {
				c, err := net.Dial("tcp", listen)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
			}
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if err := pingThrough(listen); err != nil {
					b.Fatal(err)
				}
				latencies = append(latencies, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(latencies)
			b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "conn/s")
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds()), "max-µs")
		})
	}
}

// pingThrough is one client-first client: a line out, its echo back, close.
func pingThrough(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		return fmt.Errorf("echo %q, %v", line, err)
	}
	return nil
}

// startLineServer serves each connection: greeting first (if any), then an
// echo until EOF. It returns its address.
func startLineServer(b *testing.B, greeting string) string {
	ln := nproxytest.Listener(b)
	nproxytest.ServeOn(b, ln, func(c net.Conn) {
		io.WriteString(c, greeting)
		io.Copy(c, c)
	})
	return ln.Addr().String()
}

// startBenchDaemon runs an sslh until the benchmark ends and waits until
// listen accepts connections (each probe is a client for the sslh).
func startBenchDaemon(b *testing.B, listen string, args []string) {
	startCmd(b, exec.Command(args[0], args[1:]...), true)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pingThrough(listen) == nil {
			return
		}
	}
	b.Fatalf("%v does not relay on %s", args, listen)
}

// Every host form, in sslh's address options and connect-tunnel's -T: a
// name, IPv4, IPv6 bare or bracketed.
func TestScriptHostForms(t *testing.T) {
	for in, want := range map[string]hostPort{
		"22": {"localhost", 22}, "h-1.example:22": {"h-1.example", 22}, "127.0.0.1:22": {"127.0.0.1", 22},
		"[::1]:22": {"::1", 22}, "::1:22": {"::1", 22}, ":22": {"localhost", 22},
	} {
		if got, err := parseHostPort(in); err != nil || got != want {
			t.Errorf("parseHostPort(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a b:22", "[127.0.0.1]:22", "*:22", "h:0", "h:x", "[::1:22"} {
		if got, err := parseHostPort(bad); err == nil {
			t.Errorf("parseHostPort(%q) = %+v, want an error", bad, got)
		}
	}
	for in, want := range map[string]tunnel{
		"2222:[::1]:22": {2222, "::1", 22}, "2222:::1:22": {2222, "::1", 22}, "1:h-1.x:2": {1, "h-1.x", 2},
	} {
		if got, err := parseTunnel(in); err != nil || got != want {
			t.Errorf("parseTunnel(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// FuzzSSLHArgs feeds sslh's command line: options or one error, never a
// panic, and accepted addresses are sane.
func FuzzSSLHArgs(f *testing.F) {
	for _, s := range []string{"-p 0.0.0.0:443 -s ::1:22 -l [::1]:8443 -t 0.5", "-vvv --no-ssh-probe", "-t NaN", "-s a:b:c", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := parseSSLH(strings.Fields(line), io.Discard, fakeLookup)
		if err != nil {
			return
		}
		for _, hp := range []hostPort{o.Listen, o.SSH, o.SSL} {
			if hp.Port < 1 || hp.Port > 65535 || hp.Host == "" || strings.ContainsAny(hp.Host, "[] ") {
				t.Fatalf("%q accepted with address %+v", line, hp)
			}
		}
		if !(o.Timeout > 0) || o.Timeout > maxTimeout*time.Second {
			t.Fatalf("%q accepted with timeout %v", line, o.Timeout)
		}
	})
}
