package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// drainPayload is what the drain tests' server sends each client.
const drainPayload = 20 << 20

// sourceServer sends data to every client, then closes: a download. It
// returns its port.
func sourceServer(t *testing.T, data []byte) int {
	t.Helper()
	b := newGoServer(t, "127.0.0.1:0")
	go func() {
		for c := range b.conns {
			go func() {
				c.Write(data)
				c.Close()
			}()
		}
	}()
	return b.port()
}

// startDownloads opens n clients through the proxy at in, and returns once
// each has received its first bytes: n transfers in flight. Each client
// reads the rest when released, and reports how its transfer ended.
func startDownloads(t *testing.T, in, n int, want []byte, release <-chan struct{}) <-chan error {
	t.Helper()
	results := make(chan error, n)
	var started sync.WaitGroup
	for i := 0; i < n; i++ {
		c := dialClient(t, addrOf("127.0.0.1", in))
		started.Add(1)
		go func() {
			buf := make([]byte, 256<<10)
			k, err := io.ReadAtLeast(c, buf, 1)
			started.Done()
			if err == nil {
				<-release
				c.SetReadDeadline(time.Now().Add(60 * time.Second))
				err = compareStream(c, want, buf, k)
			}
			c.Close() // the other half of the connection's close
			results <- err
		}()
	}
	started.Wait()
	return results
}

// compareStream reads r to its end and checks it against want, of which
// buf[:k] came already, without holding the whole stream: 50 clients of
// 20 MB compared with the race detector on must stay cheap.
func compareStream(r io.Reader, want, buf []byte, k int) error {
	at := 0
	for {
		if at+k > len(want) || !bytes.Equal(buf[:k], want[at:at+k]) {
			return fmt.Errorf("bytes %d-%d differ from what the server sent", at, at+k)
		}
		at += k
		var err error
		k, err = r.Read(buf)
		if err == io.EOF && k == 0 {
			if at != len(want) {
				return fmt.Errorf("EOF after %d of %d bytes", at, len(want))
			}
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("after %d bytes: %w", at, err)
		}
	}
}

// TestDrain: 50 downloads of 20 MB are in flight when SIGTERM comes. Every
// one completes byte-exact, a new client is refused from the signal on, and
// nproxy exits 0 once the last transfer ended.
func TestDrain(t *testing.T) {
	t.Parallel()
	const clients = 50
	want := randomBytes(newRand(t), drainPayload)
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, sourceServer(t, want), "-v")
	release := make(chan struct{})
	results := startDownloads(t, in, clients, want, release)

	p.signal(t, syscall.SIGTERM)
	mustEventually(t, 5*time.Second, "the listener to close", func() bool { return listeners(p.pid(), in) == 0 })
	if c, err := net.Dial("tcp", addrOf("127.0.0.1", in)); err == nil {
		c.Close()
		t.Error("a client connected after SIGTERM")
	}
	if p.exited() {
		t.Fatal("nproxy exited before its transfers ended")
	}
	close(release)
	for i := 0; i < clients; i++ {
		if err := <-results; err != nil {
			t.Errorf("transfer %d: %v", i, err)
		}
	}
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d after a drain, want 0", code)
	}
}

// TestDrainGrace: a client that stops reading holds its transfer past
// --grace 1; SIGTERM cuts it after about a second, and nproxy exits 0.
func TestDrainGrace(t *testing.T) {
	t.Parallel()
	want := randomBytes(newRand(t), drainPayload)
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, sourceServer(t, want), "-v", "--grace", "1")
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	startDownloads(t, in, 1, want, never) // a straggler: it never reads on

	begin := time.Now()
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d after the grace period, want 0", code)
	}
	took := time.Since(begin)
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("nproxy exited %v after SIGTERM with --grace 1, want about 1 s", took)
	}
	waitStderr(t, p, "grace period of 1s over")
}

// TestDrainSecondSignal: during a drain, a second SIGTERM stops at once.
func TestDrainSecondSignal(t *testing.T) {
	t.Parallel()
	want := randomBytes(newRand(t), drainPayload)
	in := unusedPort(t, "127.0.0.1")
	p := startProxy(t, "127.0.0.1", in, sourceServer(t, want), "-v")
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	startDownloads(t, in, 1, want, never)

	p.signal(t, syscall.SIGTERM)
	mustEventually(t, 5*time.Second, "the listener to close", func() bool { return listeners(p.pid(), in) == 0 })
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d after a second SIGTERM, want 0", code)
	}
}
