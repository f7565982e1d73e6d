package nproxytest

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// The commands of MeasureServer, each the first byte a client sends.
const (
	measureUp   = 'u' // read the stated number of bytes, then answer one byte
	measureDown = 'd' // send the stated number of bytes
	measureEcho = 'e' // echo
)

// MeasureServer serves the three measurements of Measure on 127.0.0.1 until
// the test ends, and returns its port. A tunnel under test goes between the
// two.
func MeasureServer(tb testing.TB) int {
	tb.Helper()
	return ServeTCP(tb, serveMeasure)
}

func serveMeasure(c net.Conn) {
	var head [9]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return
	}
	n, _ := strconv.ParseInt(string(bytes.TrimLeft(head[1:], " ")), 10, 64)
	switch head[0] {
	case measureUp:
		if _, err := io.CopyN(io.Discard, c, n); err == nil {
			c.Write([]byte{'k'})
		}
	case measureDown:
		io.CopyN(c, zeros{}, n)
	case measureEcho:
		io.Copy(c, c)
	}
	// The client closes first: a tunnel without half-close (ptunnel) may
	// drop what is in flight when its end of the stream closes.
	io.Copy(io.Discard, c)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Measurement is what Measure found through one path.
type Measurement struct {
	Up, Down float64       // KiB/s, client to server and back
	RTT      time.Duration // mean round trip of 64 bytes
}

// Measure measures the path from port to a MeasureServer: n bytes up, n
// bytes down, and rounds round trips of 64 bytes, each on a connection of
// its own.
func Measure(tb testing.TB, port int, n int64, rounds int) Measurement {
	tb.Helper()
	var m Measurement
	m.Up = kibps(n, timed(tb, port, measureUp, n, func(c net.Conn) error {
		if _, err := io.CopyN(c, zeros{}, n); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}))
	m.Down = kibps(n, timed(tb, port, measureDown, n, func(c net.Conn) error {
		_, err := io.CopyN(io.Discard, c, n)
		return err
	}))
	m.RTT = timed(tb, port, measureEcho, 0, func(c net.Conn) error {
		buf := make([]byte, 64)
		for range rounds {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
		}
		return nil
	}) / time.Duration(rounds)
	return m
}

func kibps(n int64, d time.Duration) float64 { return float64(n) / 1024 / d.Seconds() }

// timed runs one measurement on a new connection and returns its duration.
func timed(tb testing.TB, port int, cmd byte, n int64, f func(net.Conn) error) time.Duration {
	tb.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	head := []byte{cmd}
	head = append(head, []byte(padLeft(strconv.FormatInt(n, 10), 8))...)
	start := time.Now()
	if _, err := c.Write(head); err != nil {
		tb.Fatal(err)
	}
	if err := f(c); err != nil {
		tb.Fatalf("measuring %c through port %d: %v", cmd, port, err)
	}
	return time.Since(start)
}

func padLeft(s string, n int) string {
	for len(s) < n {
		s = " " + s
	}
	return s
}
