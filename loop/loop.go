// Package loop is nproxy's reactor: one goroutine, one epoll set, and the
// watch lists of Net::Proxy (listeners, readers, writers) as its API.
//
//	l, _ := loop.New(loop.Config{})
//	l.Listen(netip.MustParseAddrPort("127.0.0.1:6789"), func(client *loop.Socket) {
//		l.Dial("127.0.0.1", 9876, 0, func(server *loop.Socket, err error) {
//			if err != nil {
//				l.Close(client)
//				return
//			}
//			l.Relay(client, server)
//		})
//	})
//	go l.Run()
//	...
//	l.Stop()
//
// (ExampleLoop_Relay runs it.)
//
// Everything that touches a Socket runs on the loop goroutine; other
// goroutines hand work in with Post, which wakes the loop through an eventfd.
// Nothing on the loop blocks: connects are non-blocking, names are resolved
// off the loop, and protocol exchanges are state machines driven by Readable
// and Writable events. Relay joins two connected sockets and moves their
// bytes with splice(2) when both are plain TCP and the bytes are a stream,
// through the scratch buffer and pooled ring buffers otherwise.
package loop

import (
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nproxy/nproxy/buffer"
	"golang.org/x/sys/unix"
)

// Config sets a loop's limits. The zero value gives Net::Proxy's defaults.
type Config struct {
	// BufferSize is the most data pending for one socket before the loop
	// stops reading its peer (Net::Proxy's buffer limit): 0 means 16 KiB,
	// a negative value means unlimited.
	BufferSize int
	// ChunkSize is the most bytes moved by one read through user space: 0
	// means 64 KiB.
	ChunkSize int
	// PipeSize is the capacity asked of the kernel for splice's pipes, and so
	// the most one splice moves: 0 means 1 MiB, as Go's own splice uses.
	// Fewer, larger splices cost less CPU per byte; an empty pipe holds no
	// pages, and a connection holds a pipe only while data is in flight.
	PipeSize int
	// MaxPipes bounds the pipes the loop holds open at once, in use or
	// pooled (haproxy's maxpipes). A pipe costs two fds and a connection
	// holds one per direction only while spliced data is in flight, so a
	// bound below two per connection lets the fd limit serve more
	// connections: past it, a chunk that would be spliced is copied through
	// the buffers instead, and splicing resumes once a pipe is free. 0 means
	// no bound (the fd limit is then the backstop: EMFILE on a pipe also
	// falls back to copying); a negative value means no pipe at all (only
	// splices with a pipe at one end, which need none, remain).
	MaxPipes int
	// NoSplice turns splice off, for measuring the buffer path.
	NoSplice bool
	// ReusePort sets SO_REUSEPORT on listeners, so that several loops can
	// each listen on the same address and the kernel spreads clients.
	ReusePort bool
	// Logger receives the loop's messages; nil means the errors only (as
	// Net::Proxy's default verbosity 0), to slog.Default()'s handler.
	Logger *slog.Logger
	// Stats, if set, receives the byte counts; loops may share one.
	Stats *Stats
	// DialTimeout bounds a Dial whose timeout is 0; 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// AfterPass, if set, runs on the loop after each pass: a logger that
	// gathers the pass's lines writes them there in one go.
	AfterPass func()
}

// Stats counts a loop's relayed bytes by path, so that a test can prove which
// path ran. The counters may be read from any goroutine.
type Stats struct {
	Spliced atomic.Uint64 // bytes moved socket → pipe → socket
	Copied  atomic.Uint64 // bytes moved through user space
}

// Loop is one reactor. Create it with New, run it with Run.
type Loop struct {
	stats   *Stats
	cfg     Config
	log     *slog.Logger
	poll    poller
	sockets []*Socket // indexed by fd: fds are small, dense integers
	events  []event
	timers  timerHeap
	epoch   time.Time // the origin of Socket.born, on the monotonic clock
	rings   *buffer.Pool
	pipes   *buffer.PipePool
	// pipeTrim is armed while the pool may hold pipes; pipesUsed says a
	// pipe was taken since it was armed (see trimPipes).
	pipeTrim  *Timer
	pipesUsed bool
	scratch   []byte
	closing   []int     // fds closed during this pass, released at its end
	leaving   []*Socket // clients closed during this pass, uncounted by their gate at its end
	passStart int64     // when the pass began, on the clock of Loop.now
	passes    passCounters
	// unpollable holds the split sockets with an fd that epoll refuses
	// (a regular file): always ready, they are served on every pass.
	unpollable []*Socket

	resolvedNames map[string]resolved
	handedOver    map[netip.AddrPort]int // see Handover
	troubles      map[string]*trouble    // see Warn

	wake     int // eventfd
	wakeSent atomic.Bool
	mu       sync.Mutex
	posted   []func()
	running  []func()
	stopping bool
	started  bool // Run has started: listeners listen at once
	hangup   bool // the Readable being dispatched comes with a hang-up
	done     bool // Run has returned: posting is pointless and the eventfd is gone
}

// New makes a loop with its epoll set and wake-up eventfd.
func New(cfg Config) (*Loop, error) {
	if cfg.BufferSize == 0 {
		cfg.BufferSize = buffer.DefaultRingSize
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 64 << 10
	}
	if cfg.PipeSize <= 0 {
		cfg.PipeSize = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(errorsOnly{slog.Default().Handler()})
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	p, err := newEpoller()
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		p.close()
		return nil, err
	}
	if err := p.add(wake, watchRead); err != nil {
		p.close()
		unix.Close(wake)
		return nil, err
	}
	ringSize := buffer.DefaultRingSize
	if cfg.BufferSize > 0 {
		ringSize = cfg.BufferSize
	}
	return &Loop{
		stats:   cfg.Stats,
		cfg:     cfg,
		log:     cfg.Logger,
		poll:    p,
		wake:    wake,
		rings:   buffer.NewPool(ringSize, 256),
		pipes:   buffer.NewPipePool(cfg.PipeSize, 32, cfg.MaxPipes),
		scratch: make([]byte, cfg.ChunkSize),
		epoch:   time.Now(),
	}, nil
}

// Stats returns the loop's byte counters.
func (l *Loop) Stats() *Stats { return l.stats }

// Logger returns the loop's logger.
func (l *Loop) Logger() *slog.Logger { return l.log }

// Post runs f on the loop goroutine soon. It is the only Loop method that is
// safe to call from other goroutines.
func (l *Loop) Post(f func()) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return
	}
	l.posted = append(l.posted, f)
	l.mu.Unlock()
	// One pending wake-up is enough however many functions are posted.
	if !l.wakeSent.Swap(true) {
		var one = [8]byte{1}
		unix.Write(l.wake, one[:])
	}
}

// Stop makes Run close every socket and return. Safe from any goroutine.
func (l *Loop) Stop() { l.Post(func() { l.stopping = true }) }

// Discard releases a loop that will not run (its listeners never listened).
// Use Stop for a running loop.
func (l *Loop) Discard() { l.shutdown() }

// Run runs the loop until Stop, on a goroutine locked to its OS thread.
func (l *Loop) Run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.shutdown()
	if err := l.startListeners(); err != nil {
		return err
	}
	l.started = true
	for !l.stopping {
		var err error
		l.events, err = l.poll.wait(l.events[:0], l.waitMs())
		if err != nil {
			return err
		}
		start := time.Now()
		l.passStart = int64(start.Sub(l.epoch))
		for _, ev := range l.events {
			l.dispatch(ev)
		}
		l.dispatchUnpollable()
		l.timers.runExpired()
		l.releaseClosed()
		l.recordPass(start)
		if l.cfg.AfterPass != nil {
			l.cfg.AfterPass()
		}
	}
	return nil
}

func (l *Loop) dispatch(ev event) {
	if ev.fd == l.wake {
		l.runPosted()
		return
	}
	s := l.socket(ev.fd)
	if s == nil || s.closed {
		return
	}
	if sp := s.splitState(); sp != nil {
		ev = sp.route(s, ev)
	}
	if s.handler == nil {
		// A socket parked without a handler (a client waiting for its
		// server) still hears hang-ups; level-triggered, they would repeat
		// forever unless acted upon.
		if ev.hangup {
			l.Close(s)
		}
		return
	}
	// Hang-ups are reported whatever the interest and, level-triggered, on
	// every pass until acted upon: Readable always sees them, and learns
	// the error by reading.
	if ev.readable || ev.hangup {
		l.hangup = ev.hangup
		s.handler.Readable(s)
		l.hangup = false
	}
	if s.closed {
		// A socket closed while reading is not written in the same pass
		// (Net::Proxy 0.13's first close race).
		return
	}
	if ev.writable || ev.hangup && s.interest&watchWrite != 0 {
		s.handler.Writable(s)
	}
}

// Notify delivers readiness that the poller cannot see, such as plaintext a
// TLS engine decrypted off the loop, to s's handler as if the fd had reported
// it. It must run on the loop goroutine (from other goroutines, through Post).
func (l *Loop) Notify(s *Socket, readable, writable bool) {
	if readable && !s.closed && s.handler != nil {
		s.handler.Readable(s)
	}
	if writable && !s.closed && s.handler != nil {
		s.handler.Writable(s)
	}
}

func (l *Loop) runPosted() {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.wakeSent.Store(false)
	l.mu.Lock()
	l.running, l.posted = l.posted, l.running[:0]
	l.mu.Unlock()
	for i, f := range l.running {
		f()
		l.running[i] = nil
	}
}

func (l *Loop) shutdown() {
	for _, s := range l.sockets {
		if s != nil {
			l.Close(s)
		}
	}
	l.releaseClosed()
	l.timers.clear()
	l.pipes.Release()
	l.poll.close()
	l.mu.Lock()
	l.done = true
	l.posted = nil
	l.mu.Unlock()
	unix.Close(l.wake)
}

// ErrClosed is returned for operations on a closed socket.
var ErrClosed = errors.New("socket closed")
