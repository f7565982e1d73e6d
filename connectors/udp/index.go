package udp

import (
	"hash/maphash"
	"net/netip"
)

// flowKey is a client address as the flow table looks it up: the IPv6 form
// of its address and the port, 18 bytes with no pointer.
type flowKey struct {
	ip   [16]byte
	port uint16
}

func keyOf(a netip.AddrPort) flowKey { return flowKey{a.Addr().As16(), a.Port()} }

// addrPort returns the key as an address, IPv4-mapped ones unmapped.
func (k flowKey) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(k.ip).Unmap(), k.port)
}

// flowIndex finds a flow by its client's address: a hash table whose
// chains run through the flows themselves (flow.chain). A Go map would keep
// a copy of the key and a pointer per entry in slots it fills to 7/8 at
// most and half after it doubles, 35 to 70 bytes a flow, and leave its old
// groups to the collector at every doubling; here a flow costs its chain
// pointer and one or two bucket pointers, 16 to 24 bytes. The hash is
// seeded per table, so that a flood of chosen source addresses cannot
// pile up in one chain.
type flowIndex struct {
	seed    maphash.Seed
	buckets []*flow // a power of two of them, at least as many as flows
	n       int
}

// minBuckets is the first size of the bucket array.
const minBuckets = 64

func (x *flowIndex) bucket(k flowKey) **flow {
	return &x.buckets[maphash.Comparable(x.seed, k)&uint64(len(x.buckets)-1)]
}

// find returns the flow of k, or nil.
func (x *flowIndex) find(k flowKey) *flow {
	if x.n == 0 {
		return nil
	}
	for f := *x.bucket(k); f != nil; f = f.chain {
		if f.key == k {
			return f
		}
	}
	return nil
}

// add indexes f, which must not be indexed yet.
func (x *flowIndex) add(f *flow) {
	if x.n >= len(x.buckets) {
		x.grow()
	}
	b := x.bucket(f.key)
	f.chain, *b = *b, f
	x.n++
}

// remove forgets f, if indexed.
func (x *flowIndex) remove(f *flow) {
	if x.n == 0 {
		return
	}
	for p := x.bucket(f.key); *p != nil; p = &(*p).chain {
		if *p == f {
			*p, f.chain = f.chain, nil
			x.n--
			return
		}
	}
}

// grow doubles the buckets, so that chains stay one flow long on average.
func (x *flowIndex) grow() {
	if len(x.buckets) == 0 {
		x.seed = maphash.MakeSeed()
	}
	old := x.buckets
	x.buckets = make([]*flow, max(minBuckets, 2*len(old)))
	for _, f := range old {
		for f != nil {
			next := f.chain
			b := x.bucket(f.key)
			f.chain, *b = *b, f
			f = next
		}
	}
}
