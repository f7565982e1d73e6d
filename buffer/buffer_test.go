package buffer

import (
	"bytes"
	"math/rand"
	"testing"

	"golang.org/x/sys/unix"
)

func TestQueueKeepsOrderAcrossWrapsAndRings(t *testing.T) {
	pool := NewPool(64, 4)
	rng := rand.New(rand.NewSource(1))
	var q Queue
	var want, got []byte
	for i := 0; i < 5000; i++ {
		if rng.Intn(2) == 0 {
			p := make([]byte, rng.Intn(150))
			rng.Read(p)
			want = append(want, p...)
			q.Push(pool, p)
		} else if q.Len() > 0 {
			b := q.Peek()
			n := 1 + rng.Intn(len(b))
			got = append(got, b[:n]...)
			q.Discard(pool, n)
		}
	}
	for q.Len() > 0 {
		b := q.Peek()
		got = append(got, b...)
		q.Discard(pool, len(b))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("queue reordered or lost bytes: got %d bytes, want %d", len(got), len(want))
	}
	if len(q.rings) != 0 || pool.Idle() == 0 {
		t.Fatalf("drained queue still holds %d rings; pool idle %d", len(q.rings), pool.Idle())
	}
}

func TestQueueMoveTo(t *testing.T) {
	pool := NewPool(8, 4)
	var a, b Queue
	b.Push(pool, []byte("first-"))
	a.Push(pool, []byte("second-part"))
	a.MoveTo(&b)
	b.Push(pool, []byte("-third"))
	var got []byte
	for b.Len() > 0 {
		p := b.Peek()
		got = append(got, p...)
		b.Discard(pool, len(p))
	}
	if string(got) != "first-second-part-third" || a.Len() != 0 {
		t.Fatalf("got %q, source left with %d", got, a.Len())
	}
}

func TestPoolIsBounded(t *testing.T) {
	pool := NewPool(16, 2)
	rings := []*Ring{pool.Get(), pool.Get(), pool.Get()}
	for _, r := range rings {
		pool.Put(r)
	}
	if pool.Idle() != 2 {
		t.Fatalf("pool keeps %d rings, bound is 2", pool.Idle())
	}
}

func TestPipePoolRecyclesOnlyEmptyPipes(t *testing.T) {
	pp := NewPipePool(0, 1, 0)
	defer pp.Release()
	p, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(p.W, []byte("x")); err != nil {
		t.Fatal(err)
	}
	p.N = 1
	pp.Put(p) // holds data: must be closed, not pooled
	if pp.Idle() != 0 {
		t.Fatal("a pipe holding data went back to the pool")
	}
	if _, err := unix.Write(p.W, []byte("x")); err == nil {
		t.Fatal("pipe with data was not closed")
	}
	q, _ := pp.Get()
	pp.Put(q)
	if pp.Idle() != 1 {
		t.Fatal("an empty pipe was not pooled")
	}
	pp.Release()
	if _, err := unix.Write(q.W, []byte("x")); pp.Idle() != 0 || err == nil {
		t.Fatal("Release kept a free pipe open")
	}
	if r, err := pp.Get(); err != nil {
		t.Fatalf("the pool is unusable after Release: %v", err)
	} else {
		pp.Put(r)
	}
}

// The bound counts every pipe the pool made and has not closed, in use or
// free: Get fails cleanly at it, and a pipe given back, pooled or closed
// with data in it, makes room again; Release does not forget pipes in use.
func TestPipePoolBound(t *testing.T) {
	pp := NewPipePool(0, 1, 2)
	defer pp.Release()
	a, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	b, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := pp.Get(); err != ErrPipeLimit || p != nil {
		t.Fatalf("third Get with a bound of 2: %v, %v; want ErrPipeLimit", p, err)
	}
	a.N = 1 // as if it held data: Put closes it
	pp.Put(a)
	if pp.Open() != 1 {
		t.Fatalf("%d pipes open after closing one of two", pp.Open())
	}
	c, err := pp.Get()
	if err != nil {
		t.Fatalf("no pipe after one was closed: %v", err)
	}
	pp.Put(c) // pooled, still open
	if _, err := pp.Get(); err != nil {
		t.Fatalf("the free pipe was not handed out: %v", err)
	}
	if _, err := pp.Get(); err != ErrPipeLimit {
		t.Fatalf("Get past the bound, with the free pipe taken: %v", err)
	}
	pp.Put(c)
	pp.Release()
	if pp.Open() != 1 { // b is still out
		t.Fatalf("%d pipes open after Release with one in use, want 1", pp.Open())
	}
	pp.Put(b)
	pp.Release()
	if pp.Open() != 0 {
		t.Fatalf("%d pipes open with none in use", pp.Open())
	}
}

func TestPipePoolNegativeBoundMakesNoPipe(t *testing.T) {
	if p, err := NewPipePool(0, 1, -1).Get(); err != ErrPipeLimit {
		t.Fatalf("Get with a negative bound: %v, %v", p, err)
	}
}

func BenchmarkQueuePushDrain(b *testing.B) {
	pool := NewPool(16<<10, 4)
	var q Queue
	chunk := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for i := 0; i < b.N; i++ {
		q.Push(pool, chunk)
		for q.Len() > 0 {
			q.Discard(pool, len(q.Peek()))
		}
	}
}
