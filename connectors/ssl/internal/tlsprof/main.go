// Command tlsprof drives one TLS relay (nproxy's ssl in, haproxy's ssl
// bind) for profiling, as docs/performance-tls.md uses it: an upstream that
// echoes, or pours bytes when a client's first byte is 'D', and Go clients
// that read a server → client stream or make handshakes, while the relay's
// CPU is read from /proc/PID/stat.
//
//	go run ./connectors/ssl/internal/tlsprof -mode up -addr 127.0.0.1:17001 &
//	nproxy --in type=ssl,host=127.0.0.1,port=17002,... --out type=tcp,host=127.0.0.1,port=17001 &
//	go run ./connectors/ssl/internal/tlsprof -mode down -addr 127.0.0.1:17002 -pid $!
//	go run ./connectors/ssl/internal/tlsprof -mode hs -c 8 [-resume] -addr 127.0.0.1:17002 -pid $!
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	mode := flag.String("mode", "up", "up (the upstream), down (a server → client stream) or hs (handshakes)")
	addr := flag.String("addr", "127.0.0.1:17001", "address to listen on (up) or of the relay")
	pid := flag.Int("pid", 0, "the relay's process, whose CPU is measured")
	dur := flag.Duration("d", 3*time.Second, "measured time")
	conc := flag.Int("c", 4, "concurrent handshaking clients")
	resume := flag.Bool("resume", false, "hs: offer session tickets (a shared client session cache)")
	flag.Parse()
	// X25519 only, as the bench: OpenSSL 3.0 has no X25519MLKEM768.
	cfg := &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519}}
	switch *mode {
	case "up":
		upstream(*addr)
	case "down":
		down(*addr, *pid, *dur, cfg)
	case "hs":
		if *resume {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
		handshakes(*addr, *pid, *dur, *conc, cfg)
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
}

// cpuSeconds is the process's utime+stime.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		log.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	user, _ := strconv.ParseFloat(f[11], 64)
	sys, _ := strconv.ParseFloat(f[12], 64)
	return (user + sys) / 100
}

func upstream(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			first := make([]byte, 1)
			if _, err := io.ReadFull(c, first); err != nil {
				return
			}
			if first[0] == 'D' {
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}
			c.Write(first)
			io.Copy(c, c)
		}()
	}
}

func down(addr string, pid int, dur time.Duration, cfg *tls.Config) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		log.Fatal(err)
	}
	c.Write([]byte{'D'})
	var n atomic.Int64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			n.Add(int64(k))
			if err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // past crypto/tls's small first records
	n0, cpu0, t0 := n.Load(), cpuSeconds(pid), time.Now()
	time.Sleep(dur)
	n1, cpu1, elapsed := n.Load(), cpuSeconds(pid), time.Since(t0)
	c.NetConn().Close()
	gb := float64(n1-n0) / 1e9
	fmt.Printf("down %.1f MB/s %.3f s/GB total %.1f MB\n", gb*1e3/elapsed.Seconds(), (cpu1-cpu0)/gb, float64(n.Load())/1e6)
}

func handshakes(addr string, pid int, dur time.Duration, clients int, cfg *tls.Config) {
	var ok, resumed atomic.Int64
	stop := time.Now().Add(dur)
	cpu0 := cpuSeconds(pid)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for time.Now().Before(stop) {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					log.Print(err)
					continue
				}
				c.Write(buf)
				io.ReadFull(c, buf)
				if c.ConnectionState().DidResume {
					resumed.Add(1)
				}
				c.Close()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	used := cpuSeconds(pid) - cpu0
	fmt.Printf("hs %.0f/s %.1f µs CPU each, resumed %d/%d\n", float64(ok.Load())/dur.Seconds(), used/float64(ok.Load())*1e6, resumed.Load(), ok.Load())
}
