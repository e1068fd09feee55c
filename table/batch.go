package table

import "github.com/socktable/socktable/tuple"

// batchWidth is how many lookups LookupBatch keeps in flight. Sixteen
// outstanding misses is about what one core's line-fill buffers hold.
const batchWidth = 16

// LookupBatch looks up keys[i] for every i < n, where n = min(len(keys),
// len(vals), len(found)), stores the results in vals[i] and found[i], and
// returns n (like copy, it never writes past the shortest slice).
//
// It overlaps the lookups' memory misses by software pipelining: while it
// finishes the lookups of one chunk of 16 keys, the loads for the next
// chunk (its groups' metadata, then each key's first candidate slot) are
// already on their way. A stack that receives packets in bursts (recvmmsg,
// AF_XDP, DPDK) pays about one memory latency per chunk instead of one per
// packet. Each result is that of a Lookup at some moment during the call;
// it is lock-free and allocates nothing.
func (m *Established[V]) LookupBatch(keys []tuple.Tuple, vals []V, found []bool) int {
	n := min(len(keys), len(vals), len(found))
	tb := m.table.Load()
	var hashes [2][batchWidth]uint64
	var touched uint64
	prefetch := func(base int) { // hash a chunk and start its loads
		hs := &hashes[base/batchWidth%2]
		for i := range min(batchWidth, n-base) {
			h := m.hasher.Hash(keys[base+i]) & m.hashMask
			hs[i] = h
			g, _ := tb.home(h)
			touched += tb.meta[g].tags.Load()
		}
		for i := range min(batchWidth, n-base) {
			g, tag := tb.home(hs[i])
			if marks := matchTag(tb.meta[g].tags.Load(), tag); marks != 0 {
				// A 48-byte slot straddles two cache lines half the time:
				// touch its first and last words.
				s := &tb.slots[g*groupSlots+firstByte(marks)]
				touched += s.k[0].Load() + s.k[4].Load()
			}
		}
	}
	if n > 0 {
		prefetch(0)
	}
	for base := 0; base < n; base += batchWidth {
		if next := base + batchWidth; next < n {
			prefetch(next)
		}
		hs := &hashes[base/batchWidth%2]
		for i := range min(batchWidth, n-base) {
			vals[base+i], found[base+i] = tb.lookup(m.mode, hs[i], keys[base+i])
		}
	}
	keep(touched)
	return n
}

// keep consumes the sum of LookupBatch's prefetching loads, so the
// compiler cannot discard them as unused (it does drop unused atomic
// loads). A call per batch costs about a nanosecond.
//
//go:noinline
func keep(uint64) {}
