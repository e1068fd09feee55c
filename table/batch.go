package table

import "github.com/socktable/socktable/tuple"

// batchWidth is how many lookups LookupBatch interleaves. Sixteen
// outstanding misses is about what one core's line-fill buffers and
// reorder window can keep in flight.
const batchWidth = 16

// LookupBatch looks up keys[i] for every i < n, where n = min(len(keys),
// len(vals), len(found)), stores the results in vals[i] and found[i], and
// returns n (like copy, it never writes past the shortest slice).
//
// It interleaves the lookups so their memory misses overlap: it first
// hashes a batch of keys and loads their groups' tags, then loads the
// first candidate slot of each, and only then compares keys. A stack that
// receives packets in batches (recvmmsg, AF_XDP, DPDK bursts) pays about
// one memory latency per batch instead of one per packet. Each result is
// that of a Lookup at some moment during the call; it is lock-free and
// allocates nothing.
func (m *Established[V]) LookupBatch(keys []tuple.Tuple, vals []V, found []bool) int {
	n := min(len(keys), len(vals), len(found))
	tb := m.table.Load()
	var hashes [batchWidth]uint64
	var packed [batchWidth]key
	var touched uint64
	for base := 0; base < n; base += batchWidth {
		w := min(batchWidth, n-base)
		// Pass 1: hash, and pull each key's group metadata toward the core.
		for i := range w {
			h := m.hasher.Hash(keys[base+i]) & m.hashMask
			hashes[i] = h
			packed[i] = packKey(keys[base+i])
			g, _ := tb.home(h)
			touched += tb.meta[g].tags.Load()
		}
		// Pass 2: load the first candidate slot of each: these misses are
		// independent, so they overlap.
		for i := range w {
			g, tag := tb.home(hashes[i])
			if marks := matchTag(tb.meta[g].tags.Load(), tag); marks != 0 {
				touched += tb.slots[g*groupSlots+firstByte(marks)].k[4].Load()
			}
		}
		// Pass 3: the real lookups, now mostly from cache.
		for i := range w {
			vals[base+i], found[base+i] = tb.lookup(m.mode, hashes[i], &packed[i])
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
