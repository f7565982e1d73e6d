package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// taggedEcho serves on 127.0.0.1: it writes tag to each client, then
// echoes. It returns the port.
func taggedEcho(t *testing.T, tag byte) int {
	t.Helper()
	b := newGoServer(t, "127.0.0.1:0")
	go func() {
		for c := range b.conns {
			go func() {
				c.Write([]byte{tag})
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return b.port()
}

// tagOf connects to port, reads the server's tag and checks one echo.
func tagOf(port int) (byte, net.Conn, error) {
	c, err := net.DialTimeout("tcp", addrOf("127.0.0.1", port), 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		c.Close()
		return 0, nil, fmt.Errorf("reading the tag: %w", err)
	}
	tag := buf[0]
	if _, err := c.Write([]byte("ping\n")); err != nil {
		c.Close()
		return 0, nil, err
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		c.Close()
		return 0, nil, fmt.Errorf("echo %q: %v", buf, err)
	}
	return tag, c, nil
}

// TestReload: a client opens 200 connections a second through proxy P for
// 10 s while SIGHUP is sent 5 times with alternating configurations (P to
// server A; P to server B plus a proxy Q), then once with an invalid file.
// No client is refused or reset; P's new out side serves the next clients;
// Q serves once added, and drains once removed (its held connection goes
// on, new ones are refused); the invalid file changes nothing.
func TestReload(t *testing.T) {
	t.Parallel()
	a, b := taggedEcho(t, 'A'), taggedEcho(t, 'B')
	pPort, qPort := unusedPort(t, "127.0.0.1"), unusedPort(t, "127.0.0.1")
	one := fmt.Sprintf("proxies: [{in: {type: tcp, host: 127.0.0.1, port: %d}, out: {type: tcp, host: 127.0.0.1, port: %d}}]\n", pPort, a)
	two := fmt.Sprintf("proxies: [{in: {type: tcp, host: 127.0.0.1, port: %d}, out: {type: tcp, host: 127.0.0.1, port: %d}},\n"+
		"  {in: {type: tcp, host: 127.0.0.1, port: %d}, out: {type: tcp, host: 127.0.0.1, port: %d}}]\n", pPort, b, qPort, a)
	file := yamlFile(t, one)
	p := startNproxy(t, nil, []int{pPort}, "-v", "-c", file)

	stop := loadClients(pPort)

	begin := time.Now()
	reloads := 0
	reload := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		reloads++
		p.signal(t, syscall.SIGHUP)
		mustEventually(t, 10*time.Second, "the reload", func() bool {
			s := p.stderr.String()
			return strings.Count(s, "reloaded: ")+strings.Count(s, "reload: ") >= reloads
		})
	}
	// expectTag waits for P's next clients to reach the server tagged want.
	expectTag := func(port int, want byte) {
		t.Helper()
		tag, c, err := tagOf(port)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		c.Close()
		if tag != want {
			t.Fatalf("port %d reached server %c, want %c", port, tag, want)
		}
	}
	var held net.Conn
	for i := 0; i < 5; i++ {
		time.Sleep(1500 * time.Millisecond) // the client loop runs meanwhile
		if i%2 == 0 {
			reload(two)
			expectTag(pPort, 'B')
			expectTag(qPort, 'A')
			_, held, _ = tagOf(qPort)
		} else {
			reload(one)
			expectTag(pPort, 'A')
			if c, err := net.Dial("tcp", addrOf("127.0.0.1", qPort)); err == nil {
				c.Close()
				t.Fatal("removed proxy Q still accepts")
			}
			// Q's connection from before the reload drains: it still echoes.
			held.Write([]byte("held\n"))
			buf := make([]byte, 5)
			if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "held\n" {
				t.Fatalf("the removed proxy's connection: %q, %v", buf, err)
			}
			held.Close()
		}
	}
	// Now "two" runs. An invalid file changes nothing.
	reload("proxies: [{in: {type: tcp, port: 0}}]\n")
	waitStderr(t, p, "reload: ")
	expectTag(pPort, 'B')
	expectTag(qPort, 'A')
	time.Sleep(time.Until(begin.Add(10 * time.Second)))
	opened, errs := stop()
	t.Logf("%d connections during %d reloads, %d failed", opened, reloads, len(errs))
	for _, err := range errs {
		t.Errorf("client failed: %v", err)
	}
}

// A reload that changes a proxy's in side (here its limits) on the same
// address hands the listening socket over to the new proxy: no client is
// refused or reset, and the new limits apply.
func TestReloadChangedInSide(t *testing.T) {
	t.Parallel()
	a := taggedEcho(t, 'A')
	port := unusedPort(t, "127.0.0.1")
	doc := func(limits string) string {
		return fmt.Sprintf("proxies: [{in: {type: tcp, host: 127.0.0.1, port: %d%s}, out: {type: tcp, host: 127.0.0.1, port: %d}}]\n", port, limits, a)
	}
	file := yamlFile(t, doc(""))
	p := startNproxy(t, nil, []int{port}, "-v", "-c", file)
	stop := loadClients(port)
	for i, limits := range []string{", maxconn: 1000", "", ", deny: [10.0.0.0/8]"} {
		time.Sleep(500 * time.Millisecond)
		if err := os.WriteFile(file, []byte(doc(limits)), 0o600); err != nil {
			t.Fatal(err)
		}
		p.signal(t, syscall.SIGHUP)
		mustEventually(t, 10*time.Second, "the reload", func() bool {
			return strings.Count(p.stderr.String(), "reloaded: ") > i
		})
	}
	time.Sleep(500 * time.Millisecond)
	opened, errs := stop()
	for _, err := range errs {
		t.Errorf("client failed: %v", err)
	}
	t.Logf("%d connections, %d failed", opened, len(errs))
	if strings.Contains(p.stderr.String(), "reload: ") {
		t.Errorf("a reload failed:\n%s", p.stderr.String())
	}
	// The last configuration denies 10.0.0.0/8 only: 127.0.0.1 still served.
	if _, c, err := tagOf(port); err != nil {
		t.Errorf("after the reloads: %v", err)
	} else {
		c.Close()
	}
}
