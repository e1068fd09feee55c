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
// of a Lookup at some moment during the call, during a migration too (a
// key whose home has moved costs one more metadata line, prefetched as
// well); it is lock-free and allocates nothing. On architectures other than amd64 and arm64 (or with
// the purego build tag) it is a plain loop of lookups.
func (m *Established[V]) LookupBatch(keys []tuple.Tuple, vals []V, found []bool) int {
	n := min(len(keys), len(vals), len(found))
	m.lookupBatch(nil, keys[:n], vals, nil, found)
	return n
}

// LookupBatchHashed is LookupBatch for a caller that has hashed the keys
// already (the demultiplexer, which uses each segment's hash for every
// table it consults): hashes[i] must be Hasher().Hash(keys[i]) (see
// Established, "Hashed calls"). If kinds is not nil it also stores each
// entry's Kind in kinds[i], as LookupKind would return it, and n is
// bounded by len(kinds) too; otherwise n = min(len(hashes), len(keys),
// len(vals), len(found)). It returns n. With kinds nil it is lock-free;
// with kinds, each lookup is as LookupKind's.
func (m *Established[V]) LookupBatchHashed(hashes []uint64, keys []tuple.Tuple, vals []V, kinds []Kind, found []bool) int {
	n := min(len(hashes), len(keys), len(vals), len(found))
	if kinds != nil {
		n = min(n, len(kinds))
	}
	m.lookupBatch(hashes[:n], keys[:n], vals, kinds, found)
	if m.checkHashes {
		for i := range n {
			if m.wrongHash(hashes[i], keys[i]) {
				var zero V
				vals[i], found[i] = zero, false
				if kinds != nil {
					kinds[i] = KindConn
				}
			}
		}
	}
	return n
}

// lookupBatch runs the pipeline over keys, with their hashes if hashes
// is not nil and their kinds if kinds is not nil.
func (m *Established[V]) lookupBatch(hashes []uint64, keys []tuple.Tuple, vals []V, kinds []Kind, found []bool) {
	n := len(keys)
	p := batchPipeline[V]{m: m, tb: m.table.Load(), keys: keys, given: hashes}
	p.hashChunk(0)
	p.hashChunk(batchWidth)
	p.slotChunk(0)
	for base := 0; base < n; base += batchWidth {
		p.hashChunk(base + 2*batchWidth)
		p.slotChunk(base + batchWidth)
		hs := &p.hashes[base/batchWidth%3]
		if kinds == nil {
			for i := range min(batchWidth, n-base) {
				vals[base+i], _, found[base+i] = p.tb.lookup(m.mode, hs[i], &keys[base+i])
			}
			continue
		}
		for i := range min(batchWidth, n-base) {
			vals[base+i], kinds[base+i], found[base+i] = m.lookupKind(p.tb, hs[i], &keys[base+i])
		}
	}
}

// batchPipeline is LookupBatch's state, on its stack.
type batchPipeline[V comparable] struct {
	m      *Established[V]
	tb     *etable[V]
	keys   []tuple.Tuple
	given  []uint64                // the keys' hashes, if the caller gave them
	hashes [3][batchWidth]uint64   // by chunk number mod 3
	addrs  [2 * batchWidth]uintptr // lines to prefetch
}

// hashChunk hashes the chunk at base (or takes the hashes given) and
// prefetches its home groups' metadata. Chunks past the end are ignored.
func (p *batchPipeline[V]) hashChunk(base int) {
	if base >= len(p.keys) {
		return
	}
	hs := &p.hashes[base/batchWidth%3]
	cnt := min(batchWidth, len(p.keys)-base)
	for i := range cnt {
		var h uint64
		if p.given != nil {
			h = p.given[base+i] & p.m.hashMask
		} else {
			h = p.m.hasher.Hash(p.keys[base+i]) & p.m.hashMask
		}
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
		w := p.tb.meta[g].tags.Load()
		if w >= movedWord {
			// The home has moved: prefetch the next table's metadata.
			nt := p.tb.next.Load()
			ng, _ := nt.home(hs[i])
			p.addrs[cnt] = uintptr(unsafe.Pointer(&nt.meta[ng]))
			cnt++
			continue
		}
		if marks := matchTag(w, tag); marks != 0 {
			s := &p.tb.slots[g*groupSlots+firstByte(marks)]
			p.addrs[cnt] = uintptr(unsafe.Pointer(&s.k[0]))
			p.addrs[cnt+1] = uintptr(unsafe.Pointer(&s.v))
			cnt += 2
		}
	}
	prefetch(&p.addrs[0], cnt)
}
