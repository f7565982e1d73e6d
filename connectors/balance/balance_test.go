package balance_test

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/balance"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// backend is a real TCP server that writes its number to each client and
// holds the connection until the client or the test closes it.
type backend struct {
	id    byte
	ln    net.Listener
	port  int
	mu    sync.Mutex
	conns []net.Conn
}

func newBackend(t *testing.T, id byte) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{id: id, ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{id})
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.kill)
	return b
}

// kill closes the listener and every connection: the server is gone, and
// connects to it are refused.
func (b *backend) kill() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

// start serves a balance over backends on a Server of its own, and
// returns the port its clients connect to.
func start(t *testing.T, cfg balance.Config, backends ...*backend) (int, *nproxytest.LogBuffer) {
	t.Helper()
	servers := make([]balance.Server, len(backends))
	for i, b := range backends {
		servers[i] = balance.Server{Out: &tcp.Out{Host: "127.0.0.1", Port: b.port}, Host: "127.0.0.1", Port: b.port,
			Name: "127.0.0.1:" + strconv.Itoa(b.port)}
	}
	out, err := balance.New(servers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &nproxytest.LogBuffer{}
	srv := &nproxy.Server{}
	srv.SetLogOutput(logs)
	port := nproxytest.FreePort(t)
	nproxytest.StartServer(t, srv, 0, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	return port, logs
}

// client connects from src (127.0.0.1 if empty) and returns the connection
// and the number of the backend that answered.
func client(t *testing.T, port int, src string) (net.Conn, byte, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, 0, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var id [1]byte
	if _, err := io.ReadFull(c, id[:]); err != nil {
		return nil, 0, err
	}
	return c, id[0], nil
}

func mustClient(t *testing.T, port int, src string) (net.Conn, byte) {
	t.Helper()
	c, id, err := client(t, port, src)
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

// Round-robin spreads 300 clients over 3 servers within 5%.
func TestRoundRobinSpread(t *testing.T) {
	t.Parallel()
	port, _ := start(t, balance.Config{}, newBackend(t, 0), newBackend(t, 1), newBackend(t, 2))
	var counts [3]int
	for i := 0; i < 300; i++ {
		c, id := mustClient(t, port, "")
		counts[id]++
		c.Close()
	}
	for id, n := range counts {
		if n < 95 || n > 105 {
			t.Errorf("server %d got %d of 300 clients, want 100 ± 5: %v", id, n, counts)
		}
	}
}

// A server killed mid-test: no client fails, ever (a failed connect tries
// the next server for the same client), and the dead one is left alone.
func TestServerKilled(t *testing.T) {
	t.Parallel()
	b := []*backend{newBackend(t, 0), newBackend(t, 1), newBackend(t, 2)}
	port, logs := start(t, balance.Config{}, b...)
	var after [3]int
	for i := 0; i < 90; i++ {
		if i == 30 {
			b[1].kill()
		}
		c, id, err := client(t, port, "")
		if err != nil {
			t.Fatalf("client %d failed: %v", i, err)
		}
		if i >= 30 {
			after[id]++
		}
		c.Close()
	}
	if after[1] != 0 || after[0] < 25 || after[2] < 25 {
		t.Errorf("after the kill the clients went %v, want none to server 1 and the rest shared", after)
	}
	logs.WaitFor(t, "is down")
}

// Leastconn sends a new client where fewest are open.
func TestLeastConn(t *testing.T) {
	t.Parallel()
	port, _ := start(t, balance.Config{Balance: balance.LeastConn}, newBackend(t, 0), newBackend(t, 1), newBackend(t, 2))
	held := map[byte][]net.Conn{}
	for i := 0; i < 6; i++ {
		c, id := mustClient(t, port, "")
		held[id] = append(held[id], c)
	}
	for id := byte(0); id < 3; id++ {
		if len(held[id]) != 2 {
			t.Fatalf("6 clients held: %d on server %d, want 2 each", len(held[id]), id)
		}
	}
	// Server 1 loses both its clients: the next two go there.
	for _, c := range held[1] {
		c.Close()
	}
	for i := 0; i < 2; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, id := mustClient(t, port, "")
			if id == 1 {
				break
			}
			// The closes may not have reached the loop yet: give the
			// client back and ask again.
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("client %d after the closes went to server %d, want 1", i, id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Source: a client address sticks to one server; several addresses use
// several servers.
func TestSourceSticky(t *testing.T) {
	t.Parallel()
	port, _ := start(t, balance.Config{Balance: balance.Source}, newBackend(t, 0), newBackend(t, 1), newBackend(t, 2))
	used := map[byte]bool{}
	for host := 2; host < 22; host++ {
		src := "127.0.0." + strconv.Itoa(host)
		c, first := mustClient(t, port, src)
		c.Close()
		used[first] = true
		for i := 0; i < 5; i++ {
			c, id := mustClient(t, port, src)
			c.Close()
			if id != first {
				t.Fatalf("%s went to server %d, then to %d", src, first, id)
			}
		}
	}
	if len(used) < 2 {
		t.Errorf("20 addresses all went to one server")
	}
}

// Health checks take a dead server down without any client, and bring it
// back once it listens again.
func TestCheckTCP(t *testing.T) {
	t.Parallel()
	b := newBackend(t, 0)
	_, logs := start(t, balance.Config{Check: "tcp", Interval: 50 * time.Millisecond, Rise: 2, Fall: 2}, b, newBackend(t, 1))
	b.kill()
	logs.WaitFor(t, "127.0.0.1:"+strconv.Itoa(b.port)+" is down")
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(b.port))
	if err != nil {
		t.Fatalf("listening again on port %d: %v", b.port, err)
	}
	defer ln.Close()
	logs.WaitFor(t, "127.0.0.1:"+strconv.Itoa(b.port)+" is up")
}
