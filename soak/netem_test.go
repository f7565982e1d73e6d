//go:build soak

package soak

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// netem is a user-space stand-in for tc netem, which this kernel lacks
// (no sch_netem): it moves IP packets between two TUN devices, one per
// network namespace, and on the way delays, drops and reorders them. Each
// direction has its own goroutines:
//
//   - a reader drops a packet with probability loss; sends it at once with
//     probability reorder, so that it overtakes the packets still waiting;
//     and otherwise queues it with the time it is due (now + delay);
//   - a writer sends the queue in order, each packet when it is due.
//
// Like netem without a rate, it adds no bandwidth limit of its own: loss
// and delay bound TCP's throughput, much below what the forwarder moves.
type netem struct {
	delay   time.Duration // one way
	loss    float64       // share of packets dropped
	reorder float64       // share of packets sent without delay

	moved, dropped, reordered atomic.Int64
}

// delayed is a packet waiting in a direction's queue.
type delayed struct {
	packet []byte
	due    time.Time
}

// run forwards between a and b, both ways, until either is closed.
func (n *netem) run(a, b *os.File) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		queue := make(chan delayed, 1<<14)
		wg.Go(func() { n.read(dir[0], dir[1], queue) })
		wg.Go(func() { n.write(dir[1], queue) })
	}
	return &wg
}

func (n *netem) read(from, to *os.File, queue chan<- delayed) {
	defer close(queue)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for {
		buf := make([]byte, 2048) // one packet: the TUN's MTU is 1500, without offloads
		size, err := from.Read(buf)
		if err != nil {
			return
		}
		switch x := rng.Float64(); {
		case x < n.loss:
			n.dropped.Add(1)
		case x < n.loss+n.reorder:
			n.reordered.Add(1)
			n.moved.Add(1)
			to.Write(buf[:size])
		default:
			select {
			case queue <- delayed{buf[:size], time.Now().Add(n.delay)}:
			default: // a full queue drops, as netem's limit does
				n.dropped.Add(1)
			}
		}
	}
}

func (n *netem) write(to *os.File, queue <-chan delayed) {
	for p := range queue {
		if wait := time.Until(p.due); wait > 0 {
			time.Sleep(wait)
		}
		n.moved.Add(1)
		if _, err := to.Write(p.packet); errors.Is(err, os.ErrClosed) {
			return
		}
	}
}
