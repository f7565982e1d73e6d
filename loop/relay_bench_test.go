package loop

import (
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
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// benchmarkRelay sends chunks through the relay; allocations are counted
// for the whole process, so 0 allocs/op means the relay allocated nothing
// per chunk.
func benchmarkRelay(b *testing.B, cfg Config, hook Hook) {
	l := newTestLoop(b, cfg)
	runLoop(b, l)
	client, server := relayedPair(b, l, hook)
	defer unix.Close(client)
	defer unix.Close(server)
	chunk := make([]byte, 16<<10)
	got := make([]byte, len(chunk))
	// Warm up: the pools fill, the socket table grows.
	for i := 0; i < 100; i++ {
		unix.Write(client, chunk)
		readFull(server, got)
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := unix.Write(client, chunk); err != nil {
			b.Fatal(err)
		}
		if err := readFull(server, got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if cfg.NoSplice || hook != nil {
		if l.Stats().Copied.Load() == 0 {
			b.Fatal("the buffer path did not run")
		}
	} else if l.Stats().Spliced.Load() == 0 {
		b.Fatal("the splice path did not run")
	}
}

func BenchmarkRelaySplice(b *testing.B) { benchmarkRelay(b, Config{}, nil) }

func BenchmarkRelayCopy(b *testing.B) { benchmarkRelay(b, Config{NoSplice: true}, nil) }

func BenchmarkRelayHook(b *testing.B) {
	benchmarkRelay(b, Config{}, func(data []byte, _ *Socket) []byte { return data })
}

// TestRelayAllocatesNothingPerChunk pins what the benchmarks show: in steady
// state, neither the splice nor the buffer path allocates.
func TestRelayAllocatesNothingPerChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count needs a quiet process")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{{"splice", Config{}}, {"copy", Config{NoSplice: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			res := testing.Benchmark(func(b *testing.B) { benchmarkRelay(b, tc.cfg, nil) })
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
