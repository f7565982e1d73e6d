//go:build soak

package soak

import "encoding/binary"

// pattern is the byte stream one connection sends: byte i is a function of
// the connection's seed and i, so either end can make or check any range
// without keeping what was sent, and a lost, repeated or reordered chunk
// shows at its first byte.
type pattern uint64

// fill writes the pattern's bytes from offset off into b.
func (p pattern) fill(off int64, b []byte) {
	var word [8]byte
	for len(b) > 0 {
		binary.LittleEndian.PutUint64(word[:], splitmix(uint64(p)+uint64(off>>3)))
		n := copy(b, word[off&7:])
		b, off = b[n:], off+int64(n)
	}
}

// splitmix is SplitMix64's output function: consecutive inputs give
// unrelated words.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
