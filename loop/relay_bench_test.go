package loop

import (
	"io"
	"testing"

	"golang.org/x/sys/unix"
)

// tcpPair returns the two ends of a loopback TCP connection, blocking.
func tcpPair(t testing.TB) (int, int) {
	lfd, port := rawListener(t, 1)
	defer unix.Close(lfd)
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(c, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	s, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// relayedPair sets up client ⇄ [loop: in ⇄ out] ⇄ server on loopback TCP
// and returns the outer ends (blocking fds).
func relayedPair(t testing.TB, l *Loop, hook Hook) (client, server int) {
	client, in := tcpPair(t)
	out, server := tcpPair(t)
	unix.SetNonblock(in, true)
	unix.SetNonblock(out, true)
	onLoop(l, func() {
		a, _ := l.Adopt(in, nil)
		b, _ := l.Adopt(out, nil)
		a.Raw, b.Raw, a.Hook = true, true, hook
		l.Relay(a, b)
	})
	return client, server
}

func readFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Read(fd, p)
		switch {
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		p = p[n:]
	}
	return nil
}

// relayChunks writes chunk to client n times, reading each back in full
// from server (into got) before the next.
func relayChunks(b *testing.B, client, server int, chunk, got []byte, n int) {
	for range n {
		if _, err := unix.Write(client, chunk); err != nil {
			b.Fatal(err)
		}
		if err := readFull(server, got); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkRelay sends chunks of size through the relay; allocations are
// counted for the whole process, so 0 allocs/op means the relay allocated
// nothing per chunk. spliced says which path the chunks must take.
func benchmarkRelay(b *testing.B, cfg Config, hook Hook, size int, spliced bool) {
	l := newTestLoop(b, cfg)
	runLoop(b, l)
	client, server := relayedPair(b, l, hook)
	defer unix.Close(client)
	defer unix.Close(server)
	chunk := make([]byte, size)
	got := make([]byte, len(chunk))
	// Warm up: the pools fill, the socket table grows.
	for i := 0; i < 100; i++ {
		unix.Write(client, chunk)
		readFull(server, got)
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	relayChunks(b, client, server, chunk, got, b.N)
	b.StopTimer()
	switch st := l.Stats(); {
	case spliced && st.Spliced.Load() == 0:
		b.Fatal("the splice path did not run")
	case !spliced && (st.Copied.Load() == 0 || st.Spliced.Load() != 0):
		b.Fatal("the buffer path did not run alone")
	}
}

// streamChunk is a stream's chunk: its reads fill the copy window, so a
// plain pair splices it. smallChunk is the latency test's message, which a
// plain pair copies.
const streamChunk, smallChunk = 16 << 10, 64

func BenchmarkRelaySplice(b *testing.B) { benchmarkRelay(b, Config{}, nil, streamChunk, true) }

func BenchmarkRelayCopy(b *testing.B) {
	benchmarkRelay(b, Config{NoSplice: true}, nil, streamChunk, false)
}

func BenchmarkRelaySmall(b *testing.B) { benchmarkRelay(b, Config{}, nil, smallChunk, false) }

func BenchmarkRelayHook(b *testing.B) {
	benchmarkRelay(b, Config{}, func(data []byte, _ *Socket) []byte { return data }, streamChunk, false)
}

// TestRelayAllocatesNothingPerChunk pins what the benchmarks show: in steady
// state, neither the splice path, the buffer path nor a plain pair's short
// messages (copied) allocate.
func TestRelayAllocatesNothingPerChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count needs a quiet process")
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		size    int
		spliced bool
	}{{"splice", Config{}, streamChunk, true}, {"copy", Config{NoSplice: true}, streamChunk, false},
		{"small", Config{}, smallChunk, false}} {
		t.Run(tc.name, func(t *testing.T) {
			res := testing.Benchmark(func(b *testing.B) { benchmarkRelay(b, tc.cfg, nil, tc.size, tc.spliced) })
			// testing.Benchmark returns a zero result when the benchmark
			// failed (a relay error, or the path under test did not run).
			if res.N == 0 {
				t.Fatal("the relay benchmark failed: run it (go test -bench Relay ./loop) for its message")
			}
			if res.AllocsPerOp() != 0 {
				t.Fatalf("%d allocs per relayed chunk", res.AllocsPerOp())
			}
		})
	}
}
