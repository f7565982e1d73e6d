package main

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const scUDP = "udp"

// udpInFlight is how many datagrams the clients of one measurement keep in
// flight together, split among them: enough to keep a relay busy, few
// enough (64 × 1,400 bytes) that no default socket buffer on the path
// overflows while the relays keep up.
const udpInFlight = 64

// udpCast is the UDP relays: nproxy's udp connectors, socat with a process
// per datagram, and the naive Go relay with a goroutine per flow.
func udpCast(e *env) []*peer {
	ports := func(l, t int) (string, string) { return strconv.Itoa(l), strconv.Itoa(t) }
	peers := []*peer{
		{name: "direct", desc: "no proxy: the clients straight to the UDP echo server, the ceiling of any relay", only: set(scUDP)},
		{name: "nproxy-udp", desc: "nproxy, one loop, udp in and out connectors", udp: true,
			argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				return []string{e.nproxyBin, "--in", "type=udp,host=127.0.0.1,port=" + ls, "--out", "type=udp,host=127.0.0.1,port=" + ts}
			}},
		{name: "socat-udp", desc: "socat -T 1 UDP-RECVFROM,fork UDP-SENDTO (a process per datagram, gone after 1 s idle)",
			udp: true, forks: true, only: set(scUDP),
			argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				return []string{"socat", "-T", "1", "UDP-RECVFROM:" + ls + ",bind=127.0.0.1,reuseaddr,fork", "UDP-SENDTO:127.0.0.1:" + ts}
			}},
		{name: "naive-go-udp", desc: "a map of flows under a mutex, a connected socket and a goroutine per flow (bench/naive/udp.go)",
			udp: true, argv: func(l, t int) []string {
				ls, ts := ports(l, t)
				return []string{e.self, "-role", "naive-udp", "-listen", ls, "-target", ts}
			}},
	}
	checkPeers(e, peers)
	return peers
}

// runUDP measures datagrams per second and loss for 64- and 1,400-byte
// datagrams from one client and from 64, then the memory of idle flows.
func runUDP(e *env, peers []*peer) ([]*table, error) {
	dur := max(2*e.cfg.rateDur, time.Second)
	echo, err := startUDPEcho(e)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	type load struct{ size, clients int }
	loads := []load{{64, 1}, {64, 64}, {1400, 1}, {1400, 64}}
	var tables []*table
	rates, losses, cpus := map[load]*metric{}, map[load]*metric{}, map[load]*metric{}
	byLoad := map[load]*table{}
	for _, ld := range loads {
		rates[ld], losses[ld], cpus[ld] = higher("rate", "datagrams/s"), lower("loss", "%"), lower("proxy CPU", "µs/datagram")
		losses[ld].noRatio = true
		t := newTable(fmt.Sprintf("udp-%d-%d", ld.size, ld.clients), fmt.Sprintf("UDP, %d-byte datagrams, %d client%s", ld.size, ld.clients, plural(ld.clients)),
			fmt.Sprintf("%d client socket%s send %d-byte datagrams through the relay to a UDP echo server (bench role udp-echo) for %v, "+
				"keeping %d datagrams in flight in all (when nothing has come back for 50 ms, what is in flight is given up and the window refilled); "+
				"rate is echoes received per second, loss is 1 − received ÷ sent after a 300 ms grace; "+
				"CPU is the relay's utime+stime (children included) per echo. %s, peers interleaved.",
				ld.clients, plural(ld.clients), ld.size, dur, udpInFlight, rounds(e.cfg.rounds)),
			peers, scUDP, rates[ld], losses[ld], cpus[ld])
		byLoad[ld] = t
		tables = append(tables, t)
	}
	for round := 0; round < e.cfg.rounds; round++ {
		eachRelay(e, peers, scUDP, tables[0], round, echo.listen, func(r *running) error {
			for _, ld := range loads {
				cpu0 := measure(r.pid()).cpu
				sent, recv := udpLoad("127.0.0.1:"+strconv.Itoa(r.listen), ld.clients, ld.size, dur)
				if recv == 0 {
					byLoad[ld].note(r.p.name, "no echo came back")
					continue
				}
				rates[ld].add(r.p.name, float64(recv)/dur.Seconds())
				losses[ld].add(r.p.name, 100*float64(sent-recv)/float64(sent))
				if r.proc != nil {
					cpus[ld].add(r.p.name, (measure(r.pid()).cpu-cpu0)*1e6/float64(recv))
				}
				logf("   udp round %d %-14s %4d B × %2d clients: %8.0f datagrams/s, loss %.2f%%",
					round+1, r.p.name, ld.size, ld.clients, float64(recv)/dur.Seconds(), 100*float64(sent-recv)/float64(sent))
			}
			return nil
		})
	}
	idle, err := runUDPIdle(e, peers, echo.listen)
	if err != nil {
		return tables, err
	}
	return append(tables, idle), nil
}

// udpLoad runs clients for d, each keeping its share of udpInFlight
// datagrams of size bytes in flight, and returns the datagrams sent and the
// echoes received.
func udpLoad(addr string, clients, size int, d time.Duration) (sent, recv int64) {
	var nsent, nrecv atomic.Int64
	window := max(1, udpInFlight/clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var conns []*net.UDPConn
	for range clients {
		c, err := net.Dial("udp", addr)
		if err != nil {
			continue
		}
		uc := c.(*net.UDPConn)
		uc.SetReadBuffer(1 << 20)
		conns = append(conns, uc)
		tokens := make(chan struct{}, window)
		for range window {
			tokens <- struct{}{}
		}
		go func() { // echoes return their slot
			buf := make([]byte, 2048)
			for {
				if _, err := uc.Read(buf); err != nil && !isRefused(err) {
					return
				} else if err == nil {
					nrecv.Add(1)
					select {
					case tokens <- struct{}{}:
					default:
					}
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, size)
			giveUp := time.NewTimer(time.Hour)
			for {
				giveUp.Reset(50 * time.Millisecond)
				select {
				case <-stop:
					return
				case <-tokens:
				case <-giveUp.C:
					// Nothing came back for 50 ms: what is in flight is
					// presumed lost, and the window opens again (else each
					// loss would shrink it for good).
					for range window - 1 {
						select {
						case tokens <- struct{}{}:
						default:
						}
					}
				}
				if _, err := uc.Write(p); err == nil {
					nsent.Add(1)
				}
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	sent = nsent.Load()
	time.Sleep(300 * time.Millisecond)
	recv = nrecv.Load()
	for _, c := range conns {
		c.Close()
	}
	return sent, recv
}

func isRefused(err error) bool { return strings.Contains(err.Error(), "connection refused") }

// runUDPIdle opens idle flows one at a time (each checked to echo once),
// in two halves, and divides the relay's growth in RSS and fds by their
// number two ways. "RSS" is the growth from the fresh relay over all the
// flows, as this scenario always measured: it also counts what a Go
// process spends once, whatever the flows (the allocator's first arenas and
// their metadata, the fd table, and the garbage of the first 4 MB of heap,
// which Go does not collect before it reaches them), so it shrinks as the
// flows grow (nproxy: 1.4 KiB at 2,000 flows, 0.9 at 10,000). "RSS per
// added flow" is the growth over the second half divided by its flows: the
// cost of one more idle flow, the figure.
func runUDPIdle(e *env, peers []*peer, upstream int) (*table, error) {
	n := e.cfg.idleConns
	rss, added, fds := lower("RSS", "KiB/flow"), lower("RSS per added flow", "KiB/flow"), lower("fds", "fds/flow")
	t := newTable("udp-idle", fmt.Sprintf("UDP, %d idle flows", n), fmt.Sprintf(
		"A fresh relay, then %d client sockets each send one 64-byte datagram and wait for its echo before the next "+
			"is opened, then stay silent (the flows stay open: every relay here forgets a flow after 60 s or more). "+
			"RSS: growth of the relay's VmRSS from /proc over all the flows, divided by them (it includes what the "+
			"process spends once, whatever the number of flows); RSS per added flow: its growth from %d to %d flows, "+
			"divided by %d (measured 200 ms after the last echo each time). fds likewise over all the flows. socat is left out: it "+
			"forks a process per datagram. One round.", n, n/2, n, n-n/2), peers, "udp-idle", rss, added, fds)
	eachRelay(e, peers, "udp-idle", t, 0, upstream, func(r *running) error {
		addr := "127.0.0.1:" + strconv.Itoa(r.listen)
		time.Sleep(100 * time.Millisecond)
		base := measure(r.pid())
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		half, err := openIdleFlows(addr, n/2, &held, r.pid())
		if err != nil {
			return err
		}
		u, err := openIdleFlows(addr, n-n/2, &held, r.pid())
		if err != nil {
			return err
		}
		perFlow := float64(u.rssKiB-base.rssKiB) / float64(n)
		perAdded := float64(u.rssKiB-half.rssKiB) / float64(n-n/2)
		rss.add(r.p.name, perFlow)
		added.add(r.p.name, perAdded)
		fds.add(r.p.name, float64(u.fds-base.fds)/float64(n))
		logf("   udp idle %-14s %.2f KiB/flow, %.2f KiB per added flow, %.2f fds/flow", r.p.name, perFlow, perAdded, float64(u.fds-base.fds)/float64(n))
		return nil
	})
	return t, nil
}

// openIdleFlows opens n flows to addr, one at a time, adding their sockets
// to held, and measures the relay pid 200 ms after the last echo.
func openIdleFlows(addr string, n int, held *[]net.Conn, pid int) (usage, error) {
	buf := make([]byte, 64)
	for range n {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return usage{}, err
		}
		*held = append(*held, c)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return usage{}, err
		}
		if _, err := c.Read(buf); err != nil {
			return usage{}, fmt.Errorf("flow %d: %w", len(*held), err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	return measure(pid), nil
}

// startUDPEcho starts the upstream UDP echo server as a sub-process.
func startUDPEcho(e *env) (*running, error) {
	port := freePort()
	p, err := start(e.logDir, nil, e.self, "-role", "udp-echo", "-listen", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	if err := waitUDPBound(port, p, 5*time.Second); err != nil {
		stop(p)
		return nil, err
	}
	return &running{proc: p, listen: port}, nil
}

// udpEcho answers every datagram with itself, from two goroutines reading
// the same socket.
func udpEcho(addr string) error {
	c, err := listenUDP(addr)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					errs <- err
					return
				}
				c.WriteToUDP(buf[:n], from)
			}
		}()
	}
	return <-errs
}

func listenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return c, nil
}

// waitUDPBound polls ss(8) until a UDP socket is bound to port.
func waitUDPBound(port int, p *proc, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, _ := exec.Command("ss", "-Hlun", fmt.Sprintf("sport = :%d", port)).Output()
		if len(strings.TrimSpace(string(out))) > 0 {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v", p.cmd.Path, p.cmd.ProcessState)
		}
	}
	return fmt.Errorf("nothing bound to UDP port %d after %v", port, timeout)
}
