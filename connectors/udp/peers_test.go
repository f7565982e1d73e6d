package udp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// waitUDPBound waits until a socket is bound to UDP 127.0.0.1:port.
func waitUDPBound(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
		syscall.Close(fd)
		if errors.Is(err, syscall.EADDRINUSE) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing bound to UDP port %d", port)
		}
	}
}

// TestDigThroughDnsmasq: dig asks a real dnsmasq through nproxy 1,000
// questions from 50 source ports (20 each), with no retry: every answer
// comes, and is the one for its own question.
func TestDigThroughDnsmasq(t *testing.T) {
	t.Parallel()
	const ports, each = 50, 20
	dig := nproxytest.Command(t, "dig")
	dir := t.TempDir()
	var hosts strings.Builder
	for i := range ports {
		var batch strings.Builder
		for j := range each {
			fmt.Fprintf(&hosts, "10.%d.%d.1 h%d-%d.test.lan\n", i, j, i, j)
			fmt.Fprintf(&batch, "h%d-%d.test.lan A\n", i, j)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("batch%d", i)), []byte(batch.String()), 0o644)
	}
	hostsFile := filepath.Join(dir, "hosts")
	os.WriteFile(hostsFile, []byte(hosts.String()), 0o644)
	dnsPort := udpPort(t, "127.0.0.1")
	logs := nproxytest.StartPeer(t, nproxytest.Command(t, "dnsmasq"), "--keep-in-foreground", "--port="+strconv.Itoa(dnsPort),
		"--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
		"--addn-hosts="+hostsFile, "--conf-file=/dev/null", "--user=root", "--log-facility=-")
	logs.WaitFor(t, fmt.Sprintf("%d names", ports*each))
	r := startRelay(t, &In{Timeout: 10 * time.Second}, out(dnsPort))

	running := make(chan struct{}, 8)
	srcs := make([]int, ports)
	used := map[int]bool{}
	for i := range ports {
		src := udpPort(t, "127.0.0.1")
		for used[src] { // 50 distinct source ports, so 50 flows
			src = udpPort(t, "127.0.0.1")
		}
		used[src], srcs[i] = true, src
	}
	runAll(t, ports, func(i int) error {
		running <- struct{}{}
		defer func() { <-running }()
		return digBatch(dig, r.in.Port, srcs[i], filepath.Join(dir, fmt.Sprintf("batch%d", i)), i, each)
	})
	r.expectFlows(t, ports, each)
}

// digBatch runs one dig from source port src over a batch file of each
// questions, and checks every answer.
func digBatch(dig string, port, src int, batch string, i, each int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dig, "@127.0.0.1", "-p", strconv.Itoa(port),
		"-b", "127.0.0.1#"+strconv.Itoa(src), "+short", "+tries=1", "+timeout=5", "-f", batch).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dig from port %d: %v: %s", src, err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != each {
		return fmt.Errorf("dig from port %d: %d answers, want %d:\n%s", src, len(lines), each, out)
	}
	for j, a := range lines {
		if want := fmt.Sprintf("10.%d.%d.1", i, j); a != want {
			return fmt.Errorf("dig from port %d: answer %d is %s, want %s", src, j, a, want)
		}
	}
	return nil
}

// TestSocatPeers: a socat client (UDP-SENDTO) through nproxy to a socat
// server (UDP-RECVFROM, a child per datagram) that upper-cases.
func TestSocatPeers(t *testing.T) {
	t.Parallel()
	socat := nproxytest.Command(t, "socat")
	port := udpPort(t, "127.0.0.1")
	nproxytest.StartPeer(t, nproxytest.Command(t, "socat"), fmt.Sprintf("UDP-RECVFROM:%d,bind=127.0.0.1,reuseaddr,fork", port), "SYSTEM:tr a-z A-Z")
	waitUDPBound(t, port)
	r := startRelay(t, &In{}, out(port))
	for _, word := range []string{"hello", "datagram"} {
		cmd := exec.Command(socat, "-t", "3", "-", "UDP-SENDTO:"+r.addr)
		cmd.Stdin = strings.NewReader(word + "\n")
		got, err := cmd.Output()
		if err != nil || string(got) != strings.ToUpper(word)+"\n" {
			t.Fatalf("socat client got %q (%v), want %q", got, err, strings.ToUpper(word))
		}
	}
	if got := r.in.Counts(); got.FlowsOpened != 2 || got.DatagramsOut != 2 {
		t.Fatalf("counts %+v", got)
	}
}

// TestIperf3UDP: iperf3 -u at a fixed rate through nproxy (its control
// connection through a tcp proxy on the same port and loop): the test runs
// and nproxy drops nothing itself. Loss in kernel socket buffers is logged,
// not asserted: on a busy machine a starved process loses datagrams at any
// rate, and speed is the benchmark's to measure.
func TestIperf3UDP(t *testing.T) {
	t.Parallel()
	iperf := nproxytest.Command(t, "iperf3")
	server := udpPort(t, "127.0.0.1")
	nproxytest.StartPeer(t, nproxytest.Command(t, "iperf3"), "-s", "-1", "-B", "127.0.0.1", "-p", strconv.Itoa(server))
	for deadline := time.Now().Add(5 * time.Second); !nproxytest.Listening(server); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("iperf3 server did not listen")
		}
	}
	port := udpPort(t, "127.0.0.1")
	control := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: server})
	r := startRelay(t, &In{Port: port}, out(server), control)
	nproxytest.WaitListening(t, port) // the loop listens once it runs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := exec.CommandContext(ctx, iperf, "-c", "127.0.0.1", "-p", strconv.Itoa(port),
		"-u", "-b", "20M", "-l", "1200", "-t", "2", "--json").Output()
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, got)
	}
	var res struct {
		End struct {
			Sum struct {
				Packets     int     `json:"packets"`
				LostPackets int     `json:"lost_packets"`
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(got, &res); err != nil {
		t.Fatalf("iperf3's JSON: %v\n%s", err, got)
	}
	sum := res.End.Sum
	t.Logf("iperf3 -u -b 20M: %d datagrams, %d lost; nproxy counts %+v", sum.Packets, sum.LostPackets, r.in.Counts())
	if c := r.in.Counts(); sum.Packets < 1000 || c.DatagramsIn < uint64(sum.Packets-sum.LostPackets) || c.Dropped != 0 || c.FlowsOpened != 1 {
		t.Fatalf("iperf3: %d datagrams, %d lost; nproxy counts %+v; iperf3 said:\n%s", sum.Packets, sum.LostPackets, c, got)
	}
}
