package table

import (
	"unsafe"

	"github.com/socktable/socktable/tuple"
)

// batchWidth is how many lookups LookupBatch advances per pipeline stage:
// two stages in flight keep about 48 lines on their way, about what a
// core's miss buffers and its L2 queue hold.
const batchWidth = 16

// LookupBatch looks up keys[i] for every i < n, where n = min(len(keys),
// len(vals), len(found)), stores the results in vals[i] and found[i], and
// returns n (like copy, it never writes past the shortest slice).
//
// It overlaps the lookups' memory misses with a three-stage software
// pipeline over chunks of 16 keys: while it finishes the lookups of one
// chunk, the slots of the next chunk's first candidates and the group
// metadata of the chunk after are already being prefetched. A stack that
// receives packets in bursts (recvmmsg, AF_XDP, DPDK) pays about one
// memory latency per chunk instead of two per packet. Each result is that
// of a Lookup at some moment during the call; it is lock-free and
// allocates nothing. On architectures other than amd64 and arm64 (or with
// the purego build tag) it is a plain loop of lookups.
func (m *Established[V]) LookupBatch(keys []tuple.Tuple, vals []V, found []bool) int {
	n := min(len(keys), len(vals), len(found))
	p := batchPipeline[V]{m: m, tb: m.table.Load(), keys: keys[:n]}
	p.hashChunk(0)
	p.hashChunk(batchWidth)
	p.slotChunk(0)
	for base := 0; base < n; base += batchWidth {
		p.hashChunk(base + 2*batchWidth)
		p.slotChunk(base + batchWidth)
		hs := &p.hashes[base/batchWidth%3]
		for i := range min(batchWidth, n-base) {
			vals[base+i], found[base+i] = p.tb.lookup(m.mode, hs[i], keys[base+i])
		}
	}
	return n
}

// batchPipeline is LookupBatch's state, on its stack.
type batchPipeline[V comparable] struct {
	m      *Established[V]
	tb     *etable[V]
	keys   []tuple.Tuple
	hashes [3][batchWidth]uint64   // by chunk number mod 3
	addrs  [2 * batchWidth]uintptr // lines to prefetch
}

// hashChunk hashes the chunk at base and prefetches its home groups'
// metadata. Chunks past the end are ignored.
func (p *batchPipeline[V]) hashChunk(base int) {
	if base >= len(p.keys) {
		return
	}
	hs := &p.hashes[base/batchWidth%3]
	cnt := min(batchWidth, len(p.keys)-base)
	for i := range cnt {
		h := p.m.hasher.Hash(p.keys[base+i]) & p.m.hashMask
		hs[i] = h
		g, _ := p.tb.home(h)
		p.addrs[i] = uintptr(unsafe.Pointer(&p.tb.meta[g]))
	}
	prefetch(&p.addrs[0], cnt)
}

// slotChunk prefetches, for each key of the chunk at base, the slot of the
// first tag match in its home group (a hit's usual place); the metadata
// it reads was prefetched a stage earlier. A 48-byte slot straddles two
// cache lines half the time: both ends are prefetched.
func (p *batchPipeline[V]) slotChunk(base int) {
	if base >= len(p.keys) {
		return
	}
	hs := &p.hashes[base/batchWidth%3]
	cnt := 0
	for i := range min(batchWidth, len(p.keys)-base) {
		g, tag := p.tb.home(hs[i])
		if marks := matchTag(p.tb.meta[g].tags.Load(), tag); marks != 0 {
			s := &p.tb.slots[g*groupSlots+firstByte(marks)]
			p.addrs[cnt] = uintptr(unsafe.Pointer(&s.k[0]))
			p.addrs[cnt+1] = uintptr(unsafe.Pointer(&s.v))
			cnt += 2
		}
	}
	prefetch(&p.addrs[0], cnt)
}
