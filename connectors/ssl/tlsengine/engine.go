// Package tlsengine runs TLS for a single-threaded event loop, as a
// memory-BIO engine: crypto/tls talks to two bounded in-memory queues
// instead of a socket. The handshake runs in a goroutine of its own, so its
// public-key work never delays the loop; once it is done, records are
// sealed and opened on the caller's goroutine, a chunk at a time, which
// costs about as much as the copies around it and far less than handing
// each chunk to a goroutine (docs/performance-tls.md). The loop moves
// ciphertext between the socket and the engine, and plaintext between the
// engine and the relay:
//
//	e := tlsengine.NewServer(cfg, tlsengine.Options{}, func() { lp.Post(wake) })
//	// socket readable: n, _ := unix.Read(fd, buf); kept := e.Feed(buf[:n])
//	// socket writable: n, _ := unix.Write(fd, e.Cipher()); e.Sent(n)
//	// relay:           e.ReadAfterFeed() once, then n, err := e.Read(p) (plaintext), n, err = e.Write(p)
//	// wake:            ev := e.Events() tells what changed off the loop
//
// Every loop-side method returns at once. The engine calls notify (from its
// own goroutines) when something the loop may wait for has happened, at most
// once until the loop calls Events again. An idle session runs no goroutine
// and holds no queue memory: its queues are buffer.Rings taken only while
// bytes are in them. The package knows nothing of the loop; the ssl
// connector (connectors/ssl) drives it from one.
package tlsengine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultHandshakeTimeout bounds a handshake from its start: bytes trickled
// in by a slow or hostile peer do not extend it.
const DefaultHandshakeTimeout = 10 * time.Second

// ErrHandshakeTimeout is the failure of a handshake that ran past its deadline.
var ErrHandshakeTimeout = errors.New("TLS handshake timed out")

// ErrWriteClosed is returned by Write after CloseWrite.
var ErrWriteClosed = errors.New("TLS write side already closed")

// Options tunes an engine; the zero value gives the defaults.
type Options struct {
	// HandshakeTimeout is DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
	// QueueSize caps each of the four queues (ciphertext in and out,
	// plaintext in and out); DefaultQueueSize when zero.
	QueueSize int
}

// Events is a snapshot of what the loop can do with an engine.
type Events uint8

// The conditions reported by Events.
const (
	// CipherReady: Cipher has bytes for the socket.
	CipherReady Events = 1 << iota
	// CanFeed: Feed accepts ciphertext.
	CanFeed
	// PlainReady: Read has plaintext, or its end or failure, to report.
	PlainReady
	// CanWrite: Write accepts plaintext.
	CanWrite
	// Handshaken: the handshake completed.
	Handshaken
	// WriteShut: close_notify was queued and Cipher has nothing left, so the
	// socket's write side can be shut down.
	WriteShut
	// Failed: the session failed (see Err); once Cipher is flushed (it may
	// hold the alert that tells the peer why), the socket should be closed.
	Failed
)

// Engine is one TLS session whose transport is fed and drained by a loop.
type Engine struct {
	tc     *tls.Conn
	notify func()
	timer  *time.Timer

	mu        sync.Mutex
	dataIn    sync.Cond // cin has bytes or EOF, or the engine closed
	roomOut   sync.Cond // cout has room, or the engine closed
	roomPlain sync.Cond // pin has room, or the engine closed

	cin, cout, pin, pout ring

	armed        bool  // notify may be called
	fire         bool  // notify is due when the mutex is released
	closed       bool  // Close was called or the session failed
	shut         bool  // Close was called: queued bytes are of no use
	err          error // why the session failed
	plainErr     error // what Read reports once pin is empty
	hsDone       bool
	cinEOF       bool // the socket's read side ended
	closeWrite   bool // CloseWrite was called
	writeDone    bool // close_notify is queued
	readerOn     bool
	writerOn     bool
	feedBlocked  bool // Feed refused bytes: tell the loop when cin has room
	writeBlocked bool // Write refused bytes: tell the loop when pout has room
	sealing      bool // Write is sealing records on the loop's goroutine
	inline       bool // Read or Write runs crypto/tls on the loop's goroutine
	pending      bool // Read filled its buffer: crypto/tls may hold more
	opened       bool // ReadAfterFeed: the caller reads what it feeds
}

// NewServer starts the server side of a handshake.
func NewServer(cfg *tls.Config, opt Options, notify func()) *Engine {
	e := newEngine(opt, notify)
	e.tc = tls.Server(wire{e}, cfg)
	e.start(opt)
	return e
}

// NewClient starts the client side of a handshake; cfg.ServerName (or
// InsecureSkipVerify) must be set, as for tls.Client.
func NewClient(cfg *tls.Config, opt Options, notify func()) *Engine {
	e := newEngine(opt, notify)
	e.tc = tls.Client(wire{e}, cfg)
	e.start(opt)
	return e
}

func newEngine(opt Options, notify func()) *Engine {
	size := opt.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	e := &Engine{notify: notify, armed: true}
	for _, q := range []*ring{&e.cin, &e.cout, &e.pin, &e.pout} {
		q.size = size
	}
	for _, c := range []*sync.Cond{&e.dataIn, &e.roomOut, &e.roomPlain} {
		c.L = &e.mu
	}
	return e
}

func (e *Engine) start(opt Options) {
	timeout := opt.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	e.mu.Lock()
	e.timer = time.AfterFunc(timeout, e.expire)
	e.mu.Unlock()
	go e.handshake()
}

// unlock releases the mutex, then calls notify if a goroutine made a change
// the loop must hear of and the loop has asked for news since the last call.
func (e *Engine) unlock() {
	call := e.fire && e.armed
	e.fire = false
	if call {
		e.armed = false
	}
	e.mu.Unlock()
	if call {
		e.notify()
	}
}

// failLocked ends the session with err, unless it already ended.
func (e *Engine) failLocked(err error) {
	if e.closed {
		return
	}
	e.err, e.closed, e.fire = err, true, true
	e.timer.Stop()
	e.wakeAll()
}

func (e *Engine) wakeAll() {
	e.dataIn.Broadcast()
	e.roomOut.Broadcast()
	e.roomPlain.Broadcast()
}

func (e *Engine) expire() {
	e.mu.Lock()
	if !e.hsDone {
		e.failLocked(ErrHandshakeTimeout)
	}
	e.unlock()
}

func (e *Engine) handshake() {
	err := e.tc.Handshake()
	e.mu.Lock()
	defer e.unlock()
	if err != nil {
		e.failLocked(fmt.Errorf("TLS handshake: %w", err))
		return
	}
	if e.closed {
		return
	}
	e.timer.Stop()
	e.hsDone, e.fire = true, true
	// crypto/tls may already hold records that came with the handshake's
	// last flight, so the reader runs once even if cin is empty.
	e.startReaderLocked()
	e.startWriterLocked()
}

// fedLocked starts the reader for ciphertext just fed, unless Read
// decrypts on its caller (see open) and the caller reads what it feeds
// (ReadAfterFeed).
func (e *Engine) fedLocked() {
	if e.cin.size < minSealQueue || e.writerOn || !e.opened {
		e.startReaderLocked()
	}
}

func (e *Engine) startReaderLocked() {
	if e.hsDone && !e.readerOn && !e.closed && e.plainErr == nil {
		e.readerOn = true
		go e.reader()
	}
}

func (e *Engine) startWriterLocked() {
	if e.hsDone && !e.writerOn && !e.closed && !e.writeDone && (e.pout.len() > 0 || e.closeWrite) {
		e.writerOn = true
		go e.writer()
	}
}

// wait waits on c, once any notify due is delivered: a goroutine that
// waits holding news would stall a loop that waits for it. The caller
// re-checks its condition, which may have changed meanwhile.
func (e *Engine) wait(c *sync.Cond) {
	if e.fire {
		e.unlock()
		e.mu.Lock()
		return
	}
	c.Wait()
}

// reader decrypts while ciphertext is queued, and exits when there is none,
// so an idle connection runs no goroutine.
func (e *Engine) reader() {
	e.mu.Lock()
	defer e.unlock()
	for {
		for !e.closed && e.pin.free() == 0 {
			e.wait(&e.roomPlain)
		}
		if e.closed {
			e.readerOn = false
			if e.shut {
				e.pin.reset()
			}
			return
		}
		buf := e.pin.reserve()
		e.unlock()
		n, err := e.tc.Read(buf)
		e.mu.Lock()
		e.pin.commit(n)
		e.fire = e.fire || n > 0
		if err == nil {
			continue
		}
		if errors.Is(err, errWouldBlock) && (e.cin.len() > 0 || e.cinEOF) {
			continue // more arrived since crypto/tls looked
		}
		e.readerOn = false
		switch {
		case errors.Is(err, errWouldBlock):
		case err == io.EOF:
			e.plainErr, e.fire = io.EOF, true
		default:
			e.plainErr = err
			e.failLocked(err)
		}
		return
	}
}

// writer encrypts queued plaintext, then sends close_notify if asked to.
func (e *Engine) writer() {
	e.mu.Lock()
	defer e.unlock()
	for !e.closed {
		seg := e.pout.peek()
		if seg == nil {
			break
		}
		e.unlock()
		n, err := e.tc.Write(seg)
		e.mu.Lock()
		e.pout.discard(n)
		// The loop waits for room when Write refused bytes, and for an
		// empty queue before it reads more for this socket (backpressure
		// ends when nothing is pending): both are news.
		if e.writeBlocked || e.pout.len() == 0 {
			e.writeBlocked, e.fire = false, true
		}
		if err != nil {
			e.failLocked(err)
		}
	}
	if !e.closed && e.closeWrite {
		e.unlock()
		err := e.tc.CloseWrite()
		e.mu.Lock()
		if err != nil {
			e.failLocked(err)
		}
		e.writeDone, e.fire = true, true
	}
	if e.closed {
		e.pout.reset()
	}
	e.writerOn = false
}

// Feed queues ciphertext read from the socket and returns how much it took;
// less than len(p) means the queue is full: keep the rest, stop reading the
// socket, and wait for CanFeed. After the session ended it discards p.
func (e *Engine) Feed(p []byte) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.cinEOF {
		return len(p)
	}
	n := e.cin.push(p)
	if n < len(p) {
		e.feedBlocked = true
	}
	if n > 0 {
		e.dataIn.Broadcast()
		e.fedLocked()
	}
	return n
}

// ErrQueueFull is FeedFrom's answer when the ciphertext queue has no room:
// stop reading the socket until Events reports CanFeed.
var ErrQueueFull = errors.New("ciphertext queue full")

// FeedFrom is Feed without a copy: read fills the queue's free space
// directly, as read(2) would (a socket's fd, typically), and FeedFrom returns
// its results. With no room it returns ErrQueueFull without calling read; after
// the session ended, its failure.
func (e *Engine) FeedFrom(read func(p []byte) (int, error)) (int, error) {
	e.mu.Lock()
	if e.closed {
		defer e.mu.Unlock()
		return 0, e.failure()
	}
	buf := e.cin.reserve()
	if buf == nil {
		e.feedBlocked = true
		e.mu.Unlock()
		return 0, ErrQueueFull
	}
	e.mu.Unlock()
	n, err := read(buf)
	n = max(n, 0)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cin.commit(n)
	if n > 0 {
		e.dataIn.Broadcast()
		e.fedLocked()
	}
	return n, err
}

// failure is the session's error, or net.ErrClosed after Close.
func (e *Engine) failure() error {
	if e.err != nil {
		return e.err
	}
	return net.ErrClosed
}

// FeedEOF tells the engine that the socket's read side ended.
func (e *Engine) FeedEOF() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cinEOF = true
	e.dataIn.Broadcast()
	e.fedLocked()
}

// Cipher returns ciphertext to write to the socket; it stays valid until the
// next call to Sent.
func (e *Engine) Cipher() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cout.peek()
}

// Sent drops the first n bytes of Cipher, which the socket took.
func (e *Engine) Sent(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cout.discard(n)
	e.roomOut.Broadcast()
}

// Read moves decrypted plaintext into p. It returns 0, nil when there is
// none yet (PlainReady will tell), io.EOF after the peer's close_notify (or
// its clean end of stream), or the session's failure. Once the handshake
// is done and its last records are read, Read decrypts on the calling
// goroutine what ciphertext Feed queued (see open); PlainReady then only
// says that Read has more to give than the caller fed since. Unless the
// caller said it reads what it feeds (ReadAfterFeed), a goroutine decrypts
// what is fed and notify announces it.
func (e *Engine) Read(p []byte) (int, error) {
	e.mu.Lock()
	if n := e.pin.pull(p); n > 0 {
		e.roomPlain.Broadcast()
		e.mu.Unlock()
		return n, nil
	}
	if e.opensLocked() && len(p) > 0 {
		return e.open(p)
	}
	defer e.mu.Unlock()
	switch {
	case e.plainErr != nil:
		return 0, e.plainErr
	case e.closed:
		return 0, e.failure()
	}
	return 0, nil
}

// ReadAfterFeed tells the engine that from now on the caller calls Read
// after every Feed (as a relay does: it reads the socket when it wants
// data): once the handshake is done, Feed then starts no goroutine, and
// Read decrypts on the caller's. Before, and without it, what is fed is
// decrypted off the caller and announced, for a caller that feeds bytes
// and reads later (a connector still settling the handshake's outcome).
func (e *Engine) ReadAfterFeed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opened = true
}

// opensLocked tells whether Read decrypts on its caller (see open): the
// handshake is done, no reader goroutine runs (the one the handshake's end
// starts for records that came with its last flight), the queues are large
// enough to seal into, as for Write, and no writer goroutine runs: one that
// waits for room in the ciphertext queue must not be told, as records made
// on the loop are, that nobody will drain it.
func (e *Engine) opensLocked() bool {
	return e.hsDone && !e.readerOn && !e.writerOn && !e.closed && e.plainErr == nil && e.cin.size >= minSealQueue
}

// open decrypts queued ciphertext into p on the caller's goroutine, with
// the mutex held on entry and released on return; it fills p as far as
// complete records allow. Why not a goroutine: as for seal, the hand-over
// cost more than the decryption, and it cost a loop pass per read.
//
// crypto/tls reads errWouldBlock when no complete record is queued; then
// it holds nothing decrypted. When p fills first it may hold more:
// pending says so, for Events to report PlainReady. Records crypto/tls
// writes meanwhile (a KeyUpdate's answer, an alert) are queued without
// waiting, and announced by notify as usual.
func (e *Engine) open(p []byte) (int, error) {
	e.readerOn, e.inline = true, true
	e.mu.Unlock()
	total := 0
	var err error
	for total < len(p) && err == nil {
		var n int
		n, err = e.tc.Read(p[total:])
		total += n
	}
	e.mu.Lock()
	defer e.unlock()
	e.readerOn, e.inline = false, false
	e.pending = err == nil
	switch {
	case err == nil || errors.Is(err, errWouldBlock):
	case err == io.EOF:
		e.plainErr = io.EOF
	default:
		e.plainErr = err
		e.failLocked(err)
	}
	if total > 0 {
		return total, nil
	}
	if e.plainErr != nil {
		return 0, e.plainErr
	}
	return 0, nil
}

// Write takes plaintext to encrypt and returns how much it took; less than
// len(p) means no room: wait for CanWrite, or for Cipher to be sent. Once
// the handshake is done and nothing older waits to be encrypted, Write
// seals the records itself, on the calling goroutine, straight into the
// ciphertext queue (see seal); before that it queues p for a goroutine.
func (e *Engine) Write(p []byte) (int, error) {
	e.mu.Lock()
	switch {
	case e.closed:
		defer e.mu.Unlock()
		return 0, e.failure()
	case e.closeWrite:
		e.mu.Unlock()
		return 0, ErrWriteClosed
	case e.sealsLocked():
		return e.seal(p)
	}
	defer e.mu.Unlock()
	n := e.pout.push(p)
	if n < len(p) {
		e.writeBlocked = true
	}
	e.startWriterLocked()
	return n, nil
}

// sealsLocked tells whether Write seals records itself (see seal): once
// the handshake is done, when no older plaintext waits for the writer, and
// if the ciphertext queue is large enough for sealable to leave room.
func (e *Engine) sealsLocked() bool {
	return e.hsDone && !e.writerOn && e.pout.len() == 0 && e.cout.size >= minSealQueue
}

// writableLocked tells whether Write would take bytes now.
func (e *Engine) writableLocked() bool {
	switch {
	case e.closed || e.closeWrite:
		return false
	case e.sealsLocked():
		return sealable(e.cout.free()) > 0
	}
	return e.pout.free() > 0
}

// seal encrypts as much of p as the ciphertext queue surely holds, on the
// caller's goroutine, with the mutex held on entry and released on return.
//
// Why on the caller's (the loop's): handing every chunk to a goroutine cost
// more than the encryption itself. Profiled on a server → client stream,
// AES-GCM was 8% of the relay's CPU while starting and parking goroutines,
// futex wake-ups and the loop's eventfd took over half (docs/performance-tls.md).
// Sealing a chunk (64 KiB at most from the relay) costs about as much as
// the copy that read it; the handshake, whose public-key work is long,
// stays on its goroutine.
//
// crypto/tls fails a connection whose transport takes a short write, so
// seal only gives it what cannot overflow the queue (sealable).
func (e *Engine) seal(p []byte) (int, error) {
	n := min(len(p), sealable(e.cout.free()))
	if n == 0 {
		e.mu.Unlock()
		return 0, nil
	}
	// writerOn keeps CloseWrite and the writer goroutine away from
	// crypto/tls's output meanwhile; sealing tells wire.Write that its
	// caller is the one who drains the queue, so it neither waits nor
	// notifies.
	e.writerOn, e.sealing, e.inline = true, true, true
	e.mu.Unlock()
	n, err := e.tc.Write(p[:n])
	e.mu.Lock()
	e.writerOn, e.sealing, e.inline = false, false, false
	if err != nil {
		e.failLocked(err)
	}
	e.unlock()
	return n, err
}

// sealable is how much plaintext surely fits, sealed, in free bytes of the
// ciphertext queue. A record adds at most 325 bytes (a CBC suite: header 5,
// IV 16, MAC 48, padding 256; AES-GCM adds 22 to 29), and crypto/tls's
// records carry at least 1,100 bytes (its dynamic record sizing starts
// there), so sealing grows data by under 30%. sealHeadroom is left for a
// record a goroutine may add meanwhile (an alert, a KeyUpdate answer).
func sealable(free int) int { return max(0, (free-sealHeadroom)*3/4) }

const sealHeadroom = 1024

// minSealQueue is the smallest ciphertext queue Write seals into; with
// less, the writer goroutine encrypts, waiting for room record by record.
const minSealQueue = 4 * sealHeadroom

// CloseWrite sends close_notify once the queued plaintext is encrypted (and
// the handshake done); WriteShut then reports it queued. When the engine is
// idle, the alert is made at once on the calling goroutine (a two-byte
// record: microseconds, and nothing it could wait for), so that a loop
// closing the socket right after can still send it.
func (e *Engine) CloseWrite() {
	e.mu.Lock()
	defer e.unlock()
	if e.closeWrite {
		return
	}
	e.closeWrite = true
	idle := e.hsDone && !e.closed && !e.readerOn && !e.writerOn && e.pout.len() == 0
	if !idle || e.cout.free() < alertRoom {
		e.startWriterLocked()
		return
	}
	// Holding writerOn keeps every goroutine away from crypto/tls's output
	// while the mutex is released: the reader is off and cannot start
	// without the loop, which is here.
	e.writerOn = true
	e.mu.Unlock()
	err := e.tc.CloseWrite()
	e.mu.Lock()
	e.writerOn = false
	if err != nil {
		e.failLocked(err)
	}
	e.writeDone, e.fire = true, false
}

// alertRoom is more than an encrypted alert record takes, so that making
// one cannot wait for the loop to drain the queue.
const alertRoom = 64

// Buffered reports the output the engine holds: plaintext not yet
// encrypted and ciphertext not yet taken by Cipher and Sent.
func (e *Engine) Buffered() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cout.len() + e.pout.len()
}

// Close ends the session at once: its goroutines return promptly, no
// close_notify is sent. A notify already under way may still arrive after.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.armed, e.shut = false, true
	if !e.closed {
		e.closed = true
		e.timer.Stop()
		e.wakeAll()
	}
	e.cin.reset()
	e.cout.reset()
	if !e.readerOn {
		e.pin.reset()
	}
	if !e.writerOn {
		e.pout.reset()
	}
}

// Err returns why the session failed, or nil.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// ConnectionState describes the session once Handshaken was reported.
func (e *Engine) ConnectionState() tls.ConnectionState {
	return e.tc.ConnectionState()
}

// More reports whether Read has more to give now (what Events reports as
// PlainReady: plaintext, the end of the stream or a failure) without
// re-arming notify. A caller on whose goroutine Read decrypts asks it after
// a read, since no goroutine will announce what that read left: the rest of
// a record that did not fit, or the close_notify that came after the data.
func (e *Engine) More() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plainReadyLocked()
}

func (e *Engine) plainReadyLocked() bool {
	return e.pin.len() > 0 || e.plainErr != nil || e.err != nil || e.pending && e.opensLocked()
}

// Events reports what the loop can do now, and re-arms notify.
func (e *Engine) Events() Events {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.armed = true
	var ev Events
	set := func(cond bool, bit Events) {
		if cond {
			ev |= bit
		}
	}
	set(e.cout.len() > 0, CipherReady)
	set(e.cin.free() > 0 && !e.closed, CanFeed)
	set(e.plainReadyLocked(), PlainReady)
	set(e.writableLocked(), CanWrite)
	set(e.hsDone, Handshaken)
	set(e.writeDone && e.cout.len() == 0, WriteShut)
	set(e.err != nil, Failed)
	return ev
}
