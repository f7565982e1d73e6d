package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The measurement protocol of the tunnels scenario, between a client
// (-role tunnel-client) and a server (-role measure) with a tunnel between
// them. Every connection starts with a 9-byte header: a command byte and a
// number in 8 decimal digits. Throughput is timed over a window, not over a
// fixed number of bytes, so that a tunnel of a few KiB/s (dns, ptunnel) and
// one of a GB/s take the same time. No measurement relies on a half-close:
// ptunnel has none.
const (
	cmdUp   = 'u' // the server reads for N ms from the first byte, then answers the count (8 bytes, big-endian)
	cmdDown = 'd' // the server writes until the client closes; the client counts for N ms from the first byte
	cmdEcho = 'e' // the server echoes
)

// opTimeout bounds every step of a client, so that a wedged tunnel costs a
// measurement, never the run.
const opTimeout = 20 * time.Second

// serveMeasure serves the three commands on addr until killed.
func serveMeasure(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go measureConn(c)
	}
}

func measureConn(c net.Conn) {
	defer c.Close()
	var head [9]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return
	}
	n, _ := strconv.Atoi(strings.TrimLeft(string(head[1:]), " "))
	window := time.Duration(n) * time.Millisecond
	switch head[0] {
	case cmdUp:
		count, err := readFor(c, window)
		if err == nil {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(count))
			c.Write(b[:])
		}
		io.Copy(io.Discard, c) // until the client closes: what is in flight is not reset
	case cmdDown:
		io.Copy(c, zeros{})
	case cmdEcho:
		io.Copy(c, c)
	}
}

// readFor counts what c brings in window, timed from its first byte.
func readFor(c net.Conn, window time.Duration) (int64, error) {
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(opTimeout))
	n, err := c.Read(buf)
	if err != nil {
		return 0, err
	}
	count := int64(n)
	end := time.Now().Add(window)
	c.SetReadDeadline(end)
	for {
		n, err := c.Read(buf)
		count += int64(n)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.SetReadDeadline(time.Time{})
				return count, nil
			}
			return count, err
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// tunnelResult is what a tunnel-client run measured: the figures of its
// step (the others zero), or why the step failed.
type tunnelResult struct {
	Up, Down           float64 // bytes/s, client → server and back
	RTT                float64 // µs, p50 of 64-byte round trips on one connection
	SetupP50, SetupP99 float64 // µs, a new connection until its first 64-byte echo
	Error              string
}

// The steps of a tunnel-client run, each on a fresh tunnel: a
// throughput test ends with the client resetting a full tunnel, and a
// tunnel that has not recovered from the previous step (ptunnel can take
// tens of seconds) would otherwise fail the next.
var tunnelSteps = []string{"round-trips", "new-connections", "up", "down"}

// measureTunnel runs one step (a.step) through the tunnel entry at addr:
// a.n round trips, a.n new connections (with a.hold, while one connection
// stays open: a new stream over an open session), or a.dur each way.
func measureTunnel(addr string, a roleArgs) tunnelResult {
	var r tunnelResult
	var err error
	switch a.step {
	case "round-trips":
		var c net.Conn
		if c, err = dialCmd(addr, cmdEcho, 0); err == nil {
			var rtts []time.Duration
			if rtts, err = roundTrips(c, a.n); err == nil {
				r.RTT = micros(rtts[len(rtts)/2])
			}
			c.Close()
		}
	case "new-connections":
		var held net.Conn
		if a.hold {
			if held, err = dialCmd(addr, cmdEcho, 0); err == nil {
				err = echoChecked(held, make([]byte, len(ping)), 0)
				defer held.Close()
			}
		}
		var setups []time.Duration
		if err == nil {
			setups, err = newConns(addr, a.n)
		}
		if err == nil {
			r.SetupP50, r.SetupP99 = micros(setups[len(setups)/2]), micros(setups[len(setups)*99/100])
		}
	case "up":
		r.Up, err = upRate(addr, a.dur)
	case "down":
		r.Down, err = downRate(addr, a.dur)
	default:
		err = fmt.Errorf("unknown step %q", a.step)
	}
	if err != nil {
		r.Error = a.step + ": " + err.Error()
	}
	return r
}

// echoChecked sends 64 bytes marked with mark and checks that the same
// come back: a tunnel that hands a connection bytes of another (or of an
// earlier test) fails here instead of showing an impossibly fast round trip.
func echoChecked(c net.Conn, buf []byte, mark byte) error {
	msg := slices.Clone(ping)
	msg[0] = mark
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
		return err
	}
	if string(buf[:len(msg)]) != string(msg) {
		return fmt.Errorf("the echo is not what was sent (%q instead of %q): bytes of another stream", buf[:8], msg[:8])
	}
	return nil
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }

func dialCmd(addr string, cmd byte, n int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := fmt.Fprintf(c, "%c%8d", cmd, n); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// upRate writes until the server has counted for window and answered.
func upRate(addr string, window time.Duration) (float64, error) {
	c, err := dialCmd(addr, cmdUp, int(window.Milliseconds()))
	if err != nil {
		return 0, err
	}
	defer resetClose(c)
	c.SetDeadline(time.Now().Add(window + opTimeout))
	answer := make(chan error, 1)
	var count [8]byte
	go func() { _, err := io.ReadFull(c, count[:]); answer <- err }()
	buf := make([]byte, 32<<10)
	for {
		select {
		case err := <-answer:
			if err != nil {
				return 0, err
			}
			return float64(binary.BigEndian.Uint64(count[:])) / window.Seconds(), nil
		default:
		}
		if _, err := c.Write(buf); err != nil {
			if err := <-answer; err != nil {
				return 0, err
			}
			return float64(binary.BigEndian.Uint64(count[:])) / window.Seconds(), nil
		}
	}
}

// downRate counts what the server sends for window from the first byte.
func downRate(addr string, window time.Duration) (float64, error) {
	c, err := dialCmd(addr, cmdDown, 0)
	if err != nil {
		return 0, err
	}
	defer resetClose(c)
	n, err := readFor(c, window)
	if err != nil {
		return 0, err
	}
	return float64(n) / window.Seconds(), nil
}

// sampleTime bounds the round trips and the new connections of one run: a
// slow tunnel (ptunnel opens a session in several polling intervals) gives
// fewer samples, at least 5, rather than the whole run's time.
const sampleTime = 5 * time.Second

// resetClose ends a throughput test with a reset: the megabytes still
// queued in the tunnel's sockets are dropped, not carried to the end (at
// ptunnel's speed, tens of seconds during which the next test would wait).
func resetClose(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// roundTrips times n 64-byte round trips on c after 10 unmeasured ones, sorted.
func roundTrips(c net.Conn, n int) ([]time.Duration, error) {
	buf := make([]byte, len(ping))
	times := make([]time.Duration, 0, n)
	limit := time.Now().Add(sampleTime)
	for i := -10; i < n && !(len(times) >= 5 && time.Now().After(limit)); i++ {
		t0 := time.Now()
		if err := echoChecked(c, buf, byte(i)); err != nil {
			return nil, err
		}
		if i >= 0 {
			times = append(times, time.Since(t0))
		}
	}
	slices.Sort(times)
	return times, nil
}

// newConns times n new connections, one after the other, each from the
// dial to its first echo, after one unmeasured (which opens a session).
func newConns(addr string, n int) ([]time.Duration, error) {
	buf := make([]byte, len(ping))
	times := make([]time.Duration, 0, n)
	limit := time.Now().Add(sampleTime)
	for i := -1; i < n && !(len(times) >= 5 && time.Now().After(limit)); i++ {
		t0 := time.Now()
		c, err := dialCmd(addr, cmdEcho, 0)
		if err != nil {
			return nil, err
		}
		err = echoChecked(c, buf, byte(i))
		c.Close()
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			times = append(times, time.Since(t0))
		}
	}
	slices.Sort(times)
	return times, nil
}

// clientProcess runs argv (a client role, maybe inside a network
// namespace) to its end, at most limit, and decodes the JSON line it
// printed last into v.
func clientProcess(e *env, limit time.Duration, v any, argv ...string) error {
	p, err := start(e.logDir, nil, argv[0], argv[1:]...)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		stop(p)
		return fmt.Errorf("the client did not finish in %v", limit)
	}
	stop(p)
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		return fmt.Errorf("client: %v: %s", err, lastLines(string(b), 3))
	}
	return nil
}
