// Command httptunnel measures nproxy's httptunnel connector against GNU
// htc/hts and the plain tcp relay, on 127.0.0.1, in one run:
//
//	go run ./bench/httptunnel            # 300 MiB per bulk run, 300 connections
//	go run ./bench/httptunnel -mb 100 -conns 100
//
// For each path it reports the bulk throughput of one connection (a client
// pushes -mb MiB to an in-process sink, timed to the last byte received)
// and the time to set up a connection and get its first byte echoed, p50
// and p99 over -conns sequential connections (for mux, a new stream over
// the open session). It is not part of `make bench`: numbers on a shared
// machine are indicative only.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// path is one way from an entry port to a target port.
type path struct {
	name string
	// start starts the processes that lead from entry to target.
	start func(bin string, entry, target int) []*exec.Cmd
}

func nproxy(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }

func tcpIn(p int) string  { return "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(p) }
func tcpOut(p int) string { return "type=tcp,host=127.0.0.1,port=" + strconv.Itoa(p) }

// tunnel is nproxy to nproxy over httptunnel with extra parameters.
func tunnel(extraOut, extraIn string) func(string, int, int) []*exec.Cmd {
	return func(bin string, entry, target int) []*exec.Cmd {
		mid := strconv.Itoa(entry + 1)
		return []*exec.Cmd{nproxy(bin,
			"--in", tcpIn(entry), "--out", "type=httptunnel,host=127.0.0.1,port="+mid+extraOut,
			"--in", "type=httptunnel,host=127.0.0.1,port="+mid+extraIn, "--out", tcpOut(target))}
	}
}

var paths = []path{
	{"tcp relay (ceiling)", func(bin string, entry, target int) []*exec.Cmd {
		return []*exec.Cmd{nproxy(bin, "--in", tcpIn(entry), "--out", tcpOut(target))}
	}},
	{"nproxy httptunnel", tunnel("", "")},
	{"nproxy httptunnel mux", tunnel(",mux=1,key=k", ",mux=1,key=k")},
	{"nproxy httptunnel mux websocket", tunnel(",mux=1,key=k,websocket=1", ",mux=1,key=k")},
	{"GNU htc -> hts", func(_ string, entry, target int) []*exec.Cmd {
		mid := strconv.Itoa(entry + 1)
		return []*exec.Cmd{
			exec.Command("hts", "-w", "-F", "127.0.0.1:"+strconv.Itoa(target), "127.0.0.1:"+mid),
			exec.Command("htc", "-w", "-F", strconv.Itoa(entry), "127.0.0.1:"+mid),
		}
	}},
}

func main() {
	mb := flag.Int("mb", 300, "MiB per bulk run")
	conns := flag.Int("conns", 300, "connections timed for setup")
	flag.Parse()
	dir, err := os.MkdirTemp("", "httptunnel-bench")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "nproxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nproxy")
	build.Stderr = os.Stderr
	check(build.Run())

	fmt.Printf("| path | 1 connection, MB/s | setup + first echo p50 | p99 |\n|---|---|---|---|\n")
	for i, p := range paths {
		entry, target := 19000+10*i, 19005+10*i
		procs := p.start(bin, entry, target)
		for _, c := range procs {
			check(c.Start())
		}
		waitFor(entry)
		rate := bulk(entry, target, int64(*mb)<<20)
		p50, p99 := setup(entry, target, *conns)
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
		fmt.Printf("| %s | %s | %v | %v |\n", p.name, rate, p50, p99)
	}
}

// bulk pushes n bytes through entry to a sink on target.
func bulk(entry, target int, n int64) string {
	ln, err := net.Listen("tcp", addr(target))
	check(err)
	defer ln.Close()
	done := make(chan time.Time, 1)
	go func() {
		// Connections left over from the readiness probe come and end
		// early; the bulk one brings all n bytes.
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if m, _ := io.CopyN(io.Discard, c, n); m == n {
					done <- time.Now()
				}
			}()
		}
	}()
	c, err := net.Dial("tcp", addr(entry))
	check(err)
	defer c.Close()
	start := time.Now()
	go io.CopyN(c, zeros{}, n)
	select {
	case end := <-done:
		return fmt.Sprintf("%.0f", float64(n)/end.Sub(start).Seconds()/1e6)
	case <-time.After(2 * time.Minute):
		return "timeout"
	}
}

// setup times conns connections through entry to an echo on target, each
// until its first byte comes back. GNU htc serves one at a time, and the
// entry needs a moment to take the next: the connections are sequential.
func setup(entry, target, conns int) (p50, p99 time.Duration) {
	ln, err := net.Listen("tcp", addr(target))
	check(err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var times []time.Duration
	for i := 0; i < conns; i++ {
		start := time.Now()
		c, err := net.Dial("tcp", addr(entry))
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		if _, err := c.Write([]byte{1}); err == nil {
			if _, err := io.ReadFull(c, b[:]); err == nil {
				times = append(times, time.Since(start))
			}
		}
		c.Close()
	}
	if len(times) == 0 {
		return 0, 0
	}
	slices.Sort(times)
	return times[len(times)/2].Round(time.Microsecond), times[len(times)*99/100].Round(time.Microsecond)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func waitFor(port int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr(port)); err == nil {
			c.Close()
			return
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
