// Package buffer holds the memory nproxy relays through when it cannot splice:
// pooled ring buffers, queues of them, and the pool of pipes that splice uses.
//
//	pool := buffer.NewPool(16<<10, 64)
//	var q buffer.Queue
//	q.Push(pool, []byte("hello"))
//	n, _ := unix.Write(fd, q.Peek())
//	q.Discard(pool, n)
//
// Every type here belongs to one event loop: nothing is safe for concurrent
// use, which is what keeps the hot path free of locks. A connection holds a ring
// or a pipe only while it has data pending, so an idle connection holds neither.
package buffer
