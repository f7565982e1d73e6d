package nproxy

import "testing"

// The default maxconn and the pipes beside it fit the fd limit less the
// reserve at 2 fds a connection and 2 a pipe, for any limit and loops; at
// 20,000 fds that is haproxy's arithmetic (maxpipes = maxconn/4).
func TestFdBudget(t *testing.T) {
	if c, p := connsFor(20000), pipesFor(20000, 1); c != 7974 || p != 1993 {
		t.Errorf("20,000 fds: maxconn %d, pipes %d; want 7974 and 1993", c, p)
	}
	if c, p := connsFor(0), pipesFor(0, 1); c != 0 || p != 0 {
		t.Errorf("no fd limit: maxconn %d, pipes %d; want no bounds (0)", c, p)
	}
	for limit := 8; limit <= 70000; limit += 1 + limit/16 {
		for loops := 1; loops <= 8; loops++ {
			c, p := connsFor(limit), max(pipesFor(limit, loops), 0)
			budget := limit - min(fdReserve, limit/4)
			if c < 1 || 2*c+2*p*loops > budget {
				t.Fatalf("limit %d, %d loops: maxconn %d and %d pipes a loop overflow %d fds", limit, loops, c, p, budget)
			}
			if p*loops*connsPerPipe > c {
				t.Fatalf("limit %d, %d loops: %d pipes a loop for maxconn %d", limit, loops, p, c)
			}
		}
	}
}
