package main

import "testing"

func TestSpareProcs(t *testing.T) {
	for _, c := range []struct {
		loops, procs int
		env          string
		want         int
	}{
		{loops: 1, procs: 2, want: 0}, // one P idle already
		{loops: 2, procs: 2, want: 3},
		{loops: 4, procs: 2, want: 5},
		{loops: 1, procs: 1, want: 2},
		{loops: 2, procs: 2, env: "2", want: 0}, // the operator's choice
	} {
		if got := spareProcs(c.loops, c.procs, c.env); got != c.want {
			t.Errorf("spareProcs(%d loops, GOMAXPROCS %d, env %q) = %d, want %d", c.loops, c.procs, c.env, got, c.want)
		}
	}
}
