package loop

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nproxy/nproxy/internal/testrun"
)

func newTestLoop(t testing.TB, cfg Config) *Loop {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runLoop runs l in the background until the test ends.
func runLoop(t testing.TB, l *Loop) { testrun.InBackground(t, l) }

// onLoop runs f on the loop and waits for it.
func onLoop(l *Loop, f func()) {
	done := make(chan struct{})
	l.Post(func() { f(); close(done) })
	<-done
}

type recorder struct {
	onRead        func(s *Socket)
	reads, writes int
}

func (r *recorder) Readable(s *Socket) {
	r.reads++
	if r.onRead != nil {
		r.onRead(s)
	}
}
func (r *recorder) Writable(*Socket) { r.writes++ }

type closeCounter struct{ n int }

func (c *closeCounter) SocketClosed(*Socket) { c.n++ }

func socketPair(t testing.TB) (int, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// Net::Proxy 0.13's first close race: a socket closed during the read pass
// is not written in the same pass, and its fd number cannot be reused by a
// socket opened later in that pass.
func TestClosedDuringReadPassIsNotWritten(t *testing.T) {
	l := newTestLoop(t, Config{})
	defer l.shutdown()
	a, aPeer := socketPair(t)
	b, bPeer := socketPair(t)
	defer unix.Close(aPeer)
	defer unix.Close(bPeer)
	hb := &recorder{}
	sb, _ := l.Adopt(b, hb)
	ha := &recorder{onRead: func(*Socket) { l.Close(sb) }}
	sa, _ := l.Adopt(a, ha)
	l.dispatch(event{fd: sa.fd, readable: true})
	l.dispatch(event{fd: b, writable: true})
	if hb.writes != 0 {
		t.Fatal("a socket closed in the read pass was written in the same pass")
	}
	if _, err := unix.FcntlInt(uintptr(b), unix.F_GETFD, 0); err != nil {
		t.Fatal("the fd was released before the end of the pass: its number could be reused")
	}
	l.releaseClosed()
	if _, err := unix.FcntlInt(uintptr(b), unix.F_GETFD, 0); err == nil {
		t.Fatal("the fd was not released at the end of the pass")
	}

	// The same within one event: read closes, write is skipped.
	c, cPeer := socketPair(t)
	defer unix.Close(cPeer)
	hc := &recorder{}
	hc.onRead = func(s *Socket) { l.Close(s) }
	sc, _ := l.Adopt(c, hc)
	l.dispatch(event{fd: sc.fd, readable: true, writable: true})
	if hc.writes != 0 {
		t.Fatal("Writable called after Readable closed the socket")
	}
}

// Net::Proxy 0.13's third close race: closing twice does nothing.
func TestCloseTwiceIsNoop(t *testing.T) {
	l := newTestLoop(t, Config{})
	defer l.shutdown()
	a, aPeer := socketPair(t)
	defer unix.Close(aPeer)
	s, _ := l.Adopt(a, &recorder{})
	cc := &closeCounter{}
	s.Closer = cc
	l.Close(s)
	l.Close(s)
	l.Abort(s)
	if cc.n != 1 {
		t.Fatalf("closer told %d times", cc.n)
	}
}

// A socket in the epoll set with no handler and no interest that hangs up is
// closed rather than reported on every pass.
func TestHangupOfParkedSocketCloses(t *testing.T) {
	l := newTestLoop(t, Config{})
	defer l.shutdown()
	a, aPeer := socketPair(t)
	s, _ := l.Adopt(a, nil)
	l.WatchReader(s) // in the epoll set, then parked with no interest
	l.UnwatchReader(s)
	unix.Close(aPeer)
	evs, _ := l.poll.wait(nil, 1000)
	for _, ev := range evs {
		l.dispatch(ev)
	}
	if !s.closed {
		t.Fatal("hung-up parked socket still open")
	}
}

// The watch lists touch epoll only on change.
func TestWatchListsOnlyChangeOnChange(t *testing.T) {
	l := newTestLoop(t, Config{})
	defer l.shutdown()
	a, aPeer := socketPair(t)
	defer unix.Close(aPeer)
	s, _ := l.Adopt(a, &recorder{})
	counting := &countingPoller{poller: l.poll}
	l.poll = counting
	l.WatchReader(s)
	l.WatchReader(s)
	l.WatchWriter(s)
	l.UnwatchWriter(s)
	l.UnwatchWriter(s)
	if counting.calls != 3 {
		t.Fatalf("%d epoll_ctl calls, want 3", counting.calls)
	}
	if !s.Reading() || s.Writing() {
		t.Fatal("wrong interest")
	}
}

type countingPoller struct {
	poller
	calls int
}

func (c *countingPoller) add(fd int, interest uint8) error {
	c.calls++
	return c.poller.add(fd, interest)
}

func (c *countingPoller) modify(fd int, interest uint8) error {
	c.calls++
	return c.poller.modify(fd, interest)
}

func TestTimersFireInOrderAndStop(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	got := make(chan int, 3)
	onLoop(l, func() {
		l.AfterFunc(30*time.Millisecond, func() { got <- 2 })
		l.AfterFunc(10*time.Millisecond, func() { got <- 1 })
		l.AfterFunc(20*time.Millisecond, func() { got <- 9 }).Stop()
		l.AfterFunc(40*time.Millisecond, func() { got <- 3 })
	})
	for want := 1; want <= 3; want++ {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("timer %d fired, want %d", v, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("timer did not fire")
		}
	}
}

func TestPostFromManyGoroutines(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	var n atomic.Int64
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 1000; i++ {
				l.Post(func() {
					if n.Add(1) == 8000 {
						close(done)
					}
				})
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("only %d of 8000 posted functions ran", n.Load())
	}
}

func dialOnLoop(t *testing.T, l *Loop, host string, port int, timeout time.Duration) (*Socket, error, time.Duration) {
	type result struct {
		s   *Socket
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	l.Post(func() { l.Dial(host, port, timeout, func(s *Socket, err error) { res <- result{s, err} }) })
	select {
	case r := <-res:
		return r.s, r.err, time.Since(start)
	case <-time.After(10 * time.Second):
		t.Fatal("Dial never finished")
	}
	return nil, nil, 0
}

func TestDial(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	lfd, port := rawListener(t, 16)
	defer unix.Close(lfd)

	s, err, _ := dialOnLoop(t, l, "127.0.0.1", port, 0)
	if err != nil || s == nil || !s.Raw {
		t.Fatalf("dial by address: %v", err)
	}
	// A name is resolved off the loop; localhost may give ::1 first, which
	// refuses, and then 127.0.0.1.
	s, err, _ = dialOnLoop(t, l, "localhost", port, 0)
	if err != nil || s == nil {
		t.Fatalf("dial by name: %v", err)
	}
	unix.Close(lfd)
	_, err, _ = dialOnLoop(t, l, "127.0.0.1", port, 0)
	if err == nil || !contains(err.Error(), "connection refused") {
		t.Fatalf("dial to a closed port: %v", err)
	}
	_, err, _ = dialOnLoop(t, l, "no-such-host.invalid", port, time.Second)
	if err == nil || !contains(err.Error(), "can't resolve") {
		t.Fatalf("dial to an unknown name: %v", err)
	}
}

// A connect that gets no answer is bounded by the timeout: a listener whose
// accept queue is full makes the kernel drop further SYNs.
func TestDialTimeout(t *testing.T) {
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	lfd, port := rawListener(t, 0)
	defer unix.Close(lfd)
	var fillers []int
	defer func() {
		for _, fd := range fillers {
			unix.Close(fd)
		}
	}()
	for i := 0; i < 4; i++ {
		fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
		fillers = append(fillers, fd)
	}
	time.Sleep(50 * time.Millisecond)
	_, err, took := dialOnLoop(t, l, "127.0.0.1", port, 300*time.Millisecond)
	if err == nil {
		t.Skip("the kernel accepted past the backlog; no silent peer to time out on")
	}
	if !contains(err.Error(), "timed out") || took > 2*time.Second {
		t.Fatalf("got %v after %v, want a timeout after 300ms", err, took)
	}
}

func rawListener(t testing.TB, backlog int) (int, int) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	return fd, sa.(*unix.SockaddrInet4).Port
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Accepting survives running out of file descriptors: the listener pauses
// instead of spinning, and resumes.
func TestAcceptPausesOnEMFILE(t *testing.T) {
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	l := newTestLoop(t, Config{})
	runLoop(t, l)
	accepted := make(chan *Socket, 64)
	var port int
	onLoop(l, func() {
		s, err := l.Listen(netip.MustParseAddrPort("127.0.0.1:0"), func(c *Socket) { accepted <- c })
		if err != nil {
			t.Error(err)
			return
		}
		sa, _ := unix.Getsockname(s.fd)
		port = sa.(*unix.SockaddrInet4).Port
	})
	// The client socket exists before fds run out; connecting needs no new fd.
	cfd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	var held []int
	for len(held) <= int(rl.Cur) {
		fd, err := unix.Dup(0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	unix.Connect(cfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	cpu := cpuTime()
	time.Sleep(500 * time.Millisecond) // several back-off periods
	if used := cpuTime() - cpu; used > 150*time.Millisecond {
		t.Errorf("the process used %v of CPU in 500ms without fds: accept spins", used)
	}
	select {
	case <-accepted:
		t.Fatal("accepted with no fd available")
	default:
	}
	for _, fd := range held {
		unix.Close(fd)
	}
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("accepting did not resume once fds were free")
	}
	unix.Close(cfd)
}
