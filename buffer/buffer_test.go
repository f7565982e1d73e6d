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
	pp := NewPipePool(0, 1)
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
