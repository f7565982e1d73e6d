//go:build soak

package soak

import (
	"bytes"
	"testing"
)

// The pattern must be the same whatever the chunking, or every check of the
// suite would compare against the wrong bytes.
func TestPatternChunking(t *testing.T) {
	p := pattern(12345)
	whole := make([]byte, 1000)
	p.fill(0, whole)
	for _, step := range []int{1, 3, 7, 8, 13, 999} {
		got := make([]byte, 0, len(whole))
		for off := 0; off < len(whole); off += step {
			b := make([]byte, min(step, len(whole)-off))
			p.fill(int64(off), b)
			got = append(got, b...)
		}
		if !bytes.Equal(got, whole) {
			t.Errorf("chunks of %d differ from one fill", step)
		}
	}
	other := make([]byte, 1000)
	pattern(12346).fill(0, other)
	if bytes.Equal(other, whole) {
		t.Error("two seeds give the same bytes")
	}
}
