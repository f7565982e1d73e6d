//go:build soak

package soak

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// errMismatch marks an echo that differs from what was sent: the one
// outcome no case tolerates.
var errMismatch = errors.New("bytes differ")

// errAborted marks a transfer the client itself reset midway, as planned.
var errAborted = errors.New("reset by the client")

// transfer is what one client connection does.
type transfer struct {
	seed  pattern
	size  int64
	early bool          // half-close as soon as everything is written, before the echo is read
	quiet time.Duration // silence before the first byte (dual's server-first clients)
	stall time.Duration // longest wait for progress before giving up
	abort bool          // reset the connection once half the echo is back
}

// halfCloser is a connection that can end its sending side only:
// *net.TCPConn and *tls.Conn are.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// exchange sends t's pattern on c while reading the echo, checks every
// byte, then expects a clean end of stream. A client that is not early
// half-closes only after the whole echo came back, so both orders reach the
// proxy. It returns the bytes echoed correctly.
func exchange(c net.Conn, tr transfer) (int64, error) {
	hc, ok := c.(halfCloser)
	if !ok {
		return 0, fmt.Errorf("%T cannot half-close", c)
	}
	if tr.quiet > 0 {
		time.Sleep(tr.quiet)
	}
	if tr.abort {
		return abort(hc, tr)
	}
	written := make(chan error, 1)
	go func() { written <- send(hc, tr) }()
	n, err := receive(c, tr)
	if err == nil && !tr.early {
		err = hc.CloseWrite()
	}
	if err == nil {
		if err = nproxytest.ReadEOF(c, tr.stall); errors.Is(err, nproxytest.ErrDataBeforeEOF) {
			err = fmt.Errorf("%w: bytes after the echo", errMismatch)
		}
	}
	if err != nil {
		c.Close() // unblocks the writer
	}
	if werr := <-written; err == nil && werr != nil {
		err = fmt.Errorf("write: %w", werr)
	}
	return n, err
}

// abort sends the first half of the pattern, reads its echo, and resets
// the connection.
func abort(c halfCloser, tr transfer) (int64, error) {
	tr.size /= 2
	tr.early = false
	if err := send(c, tr); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	n, err := receive(c, tr)
	if err != nil {
		return n, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // close sends a reset
	}
	return n, errAborted
}

// send writes the pattern in chunks of random sizes up to 64 KiB.
func send(c halfCloser, tr transfer) error {
	buf := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(uint64(tr.seed), 1))
	for off := int64(0); off < tr.size; {
		n := min(int64(1+rng.IntN(len(buf))), tr.size-off)
		tr.seed.fill(off, buf[:n])
		c.SetWriteDeadline(time.Now().Add(tr.stall))
		if _, err := c.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	if tr.early {
		return c.CloseWrite()
	}
	return nil
}

// receive reads size bytes and compares them with the pattern.
func receive(c net.Conn, tr transfer) (int64, error) {
	got, want := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for off < tr.size {
		c.SetReadDeadline(time.Now().Add(tr.stall))
		n, err := c.Read(got[:min(int64(len(got)), tr.size-off)])
		if n > 0 {
			tr.seed.fill(off, want[:n])
			if !bytes.Equal(got[:n], want[:n]) {
				return off, fmt.Errorf("%w at byte %d of %d", errMismatch, off+int64(nproxytest.FirstDiff(got[:n], want[:n])), tr.size)
			}
			off += int64(n)
		}
		if err != nil {
			return off, fmt.Errorf("read %d of %d bytes: %w", off, tr.size, err)
		}
	}
	return off, nil
}

// logUniform returns a size between 1 and max whose logarithm is uniform:
// as many transfers of a few bytes as of a few MiB.
func logUniform(rng *rand.Rand, max int64) int64 {
	return min(max, int64(math.Exp(rng.Float64()*math.Log(float64(max))))+1)
}

// tally counts a load's outcomes; it is safe for concurrent use.
type tally struct {
	conns, ok, mismatches, failed, aborted, bytes atomic.Int64

	mu    sync.Mutex
	first []string // the first few errors, for the log
}

func (tl *tally) note(n int64, err error) {
	tl.conns.Add(1)
	tl.bytes.Add(n)
	switch {
	case err == nil:
		tl.ok.Add(1)
		return
	case errors.Is(err, errAborted):
		tl.aborted.Add(1)
		return
	case errors.Is(err, errMismatch):
		tl.mismatches.Add(1)
	default:
		tl.failed.Add(1)
	}
	tl.mu.Lock()
	if len(tl.first) < 5 {
		tl.first = append(tl.first, err.Error())
	}
	tl.mu.Unlock()
}

func (tl *tally) errors() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return fmt.Sprint(tl.first)
}

// String is the figure of a load: connections, bytes, outcomes.
func (tl *tally) String() string {
	s := fmt.Sprintf("%d conns, %s echoed, %d mismatches, %d failed", tl.conns.Load(), mib(tl.bytes.Load()), tl.mismatches.Load(), tl.failed.Load())
	if n := tl.aborted.Load(); n > 0 {
		s += fmt.Sprintf(", %d reset by their client", n)
	}
	return s
}

// exact fails t unless every transfer of tl was byte-exact and none failed.
func (tl *tally) exact(t *testing.T) {
	t.Helper()
	if tl.mismatches.Load() != 0 || tl.failed.Load() != 0 {
		t.Errorf("%v; first errors: %s", tl, tl.errors())
	}
}

func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// phase is a stretch of a load at one concurrency.
type phase struct {
	conns   int           // clients at once
	maxSize int64         // largest transfer
	d       time.Duration // how long new connections start
}

// phases spreads d over 64, 256 and 1000 concurrent clients (at most
// limit). The largest transfer shrinks as concurrency grows, 64 MiB at 64
// clients down to 4 MiB at 1000, so that the last transfers of a phase end
// within seconds of its time rather than minutes.
func phases(d time.Duration, limit int) []phase {
	var ps []phase
	for _, n := range []int{64, 256, 1000} {
		if n > limit {
			n = limit
		}
		ps = append(ps, phase{conns: n, maxSize: 64 << 20 * 64 / int64(n), d: d / 3})
	}
	return ps
}

// load runs clients: in each phase, conns workers each open a connection
// with dial, run one transfer, and start again until the phase's time is
// up. plan picks each transfer.
type load struct {
	dial func() (net.Conn, error)
	plan func(rng *rand.Rand, maxSize int64) transfer
}

// run runs the phases in turn, noting every outcome in tl.
func (l load) run(ps []phase, tl *tally, seed uint64) {
	l.runEach(ps, seed, func(_ time.Time, _ time.Duration, n int64, err error) { tl.note(n, err) })
}

// runEach runs the phases in turn and gives each outcome to note with the
// connection's start and duration.
func (l load) runEach(ps []phase, seed uint64, note func(start time.Time, took time.Duration, n int64, err error)) {
	for i, p := range ps {
		deadline := time.Now().Add(p.d)
		var wg sync.WaitGroup
		for w := range p.conns {
			rng := rand.New(rand.NewPCG(seed, uint64(i<<20|w)))
			wg.Go(func() {
				for time.Now().Before(deadline) {
					start := time.Now()
					n, err := l.once(rng, p.maxSize)
					note(start, time.Since(start), n, err)
				}
			})
		}
		wg.Wait()
	}
}

func (l load) once(rng *rand.Rand, maxSize int64) (int64, error) {
	tr := l.plan(rng, maxSize)
	c, err := l.dial()
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	return exchange(c, tr)
}

// standard is the transfer of the relay cases: a random pattern, a size
// up to maxSize, one client in three half-closing early.
func standard(rng *rand.Rand, maxSize int64) transfer {
	return transfer{seed: pattern(rng.Uint64()), size: logUniform(rng, maxSize), early: rng.IntN(3) == 0, stall: 30 * time.Second}
}
