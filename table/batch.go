package table

import (
	"unsafe"

	"github.com/socktable/socktable/tuple"
)

// batchWidth is how many lookups LookupBatch advances per pipeline stage:
// two stages in flight keep about 48 lines on their way, about what a
// core's miss buffers and its L2 queue hold.
const batchWidth = 16

// prefetchRun is how many keys' lines a stage computes before it sends them
// to prefetch: sooner than at the end of the chunk, as the first lines
// are the first the next stage waits for.
const prefetchRun = 4

// LookupBatch looks up keys[i] for every i < n, where n = min(len(keys),
// len(vals), len(found)), stores the results in vals[i] and found[i], and
// returns n (like copy, it never writes past the shortest slice).
//
// It overlaps the lookups' memory misses with a three-stage software
// pipeline over chunks of 16 keys: it prefetches a chunk's group metadata,
// then reads it and prefetches each key's likely slot (the first tag
// match along the home's metadata line), then checks that one slot; the
// stages of consecutive chunks run interleaved, so a burst longer than 16
// keeps several chunks' misses in flight. A stack that receives packets
// in bursts (recvmmsg, AF_XDP, DPDK) pays about two memory latencies per
// call instead of two per packet. Each result is that of a Lookup at
// some moment during the call, during a migration too (a key whose home
// has moved costs one more metadata line, prefetched as well); it is
// lock-free and allocates nothing. On architectures other than amd64 and
// arm64 (or with the purego build tag) nothing is prefetched: the same
// stages run as a loop of lookups.
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
//
// Each key goes through three stages, a chunk of batchWidth keys at a
// time: hashChunk hashes it and prefetches its home group's metadata;
// slotChunk, a chunk later, reads that metadata and walks the home's
// metadata line to the first tag match, whose slot it prefetches (or
// settles a miss there and then); the final stage, a chunk later still,
// checks that one slot. Only a key the stages could not settle (a false
// tag match, a chain that leaves its home line, a moved home, a kind
// change in progress) takes the full lookup.
func (m *Established[V]) lookupBatch(hashes []uint64, keys []tuple.Tuple, vals []V, kinds []Kind, found []bool) {
	n := len(keys)
	// Declared, then filled: a composite literal was built in a temporary,
	// zeroed and then copied whole, a kilobyte twice per call.
	var p batchPipeline[V]
	p.m, p.tb, p.keys, p.given = m, m.table.Load(), keys, hashes
	p.hashChunk(0)
	p.hashChunk(batchWidth)
	p.slotChunk(0)
	tb, mode := p.tb, m.mode
	for base := 0; base < n; base += batchWidth {
		p.hashChunk(base + 2*batchWidth)
		p.slotChunk(base + batchWidth)
		hs, cs := &p.hashes[base/batchWidth%3], &p.cands[base/batchWidth%3]
		for i := range min(batchWidth, n-base) {
			k := &keys[base+i]
			switch c := cs[i]; {
			case c >= 0:
				s := &tb.slots[c]
				if version, ok := s.holds(k); ok {
					v := loadValue(mode, s)
					if s.k[4].Load() == version && (kinds == nil || version&slotChanging == 0) {
						vals[base+i], found[base+i] = v, true
						if kinds != nil {
							kinds[base+i] = kindOf(version)
						}
						continue
					}
				}
			case c == candMiss:
				var zero V
				vals[base+i], found[base+i] = zero, false
				if kinds != nil {
					kinds[base+i] = KindConn
				}
				continue
			}
			// Not settled by the stages: the full lookup.
			if kinds == nil {
				vals[base+i], _, found[base+i] = tb.lookup(mode, hs[i], k)
			} else {
				vals[base+i], kinds[base+i], found[base+i] = m.lookupKind(tb, hs[i], k)
			}
		}
	}
}

// A chunk's candidate for each key, set by slotChunk: a slot index (the
// first tag match along the home's chain, a hit's usual place), or one of
// these.
const (
	candMiss   = -1 // the chain ended with no tag match: a miss
	candLookup = -2 // not settled: the full lookup decides
)

// batchPipeline is LookupBatch's state, on its stack.
type batchPipeline[V comparable] struct {
	m     *Established[V]
	tb    *etable[V]
	keys  []tuple.Tuple
	given []uint64 // the keys' hashes, if the caller gave them
	// By chunk number mod 3: the keys' hashes, and their home groups
	// (set by hashChunk) replaced by their candidates (slotChunk).
	hashes [3][batchWidth]uint64
	cands  [3][batchWidth]int
	addrs  [3 * batchWidth]uintptr // lines to prefetch: at most three per key
}

// hashChunk hashes the chunk at base (or takes the hashes given) and
// prefetches its home groups' metadata. Chunks past the end are ignored.
func (p *batchPipeline[V]) hashChunk(base int) {
	if base >= len(p.keys) {
		return
	}
	hs, cs := &p.hashes[base/batchWidth%3], &p.cands[base/batchWidth%3]
	cnt := min(batchWidth, len(p.keys)-base)
	tb := p.tb
	for i := range cnt {
		var h uint64
		if p.given != nil {
			h = p.given[base+i] & p.m.hashMask
		} else {
			h = p.m.hasher.Hash(p.keys[base+i]) & p.m.hashMask
		}
		hs[i] = h
		g, _ := tb.home(h)
		cs[i] = g
		p.addrs[i] = uintptr(unsafe.Pointer(&tb.meta[g]))
		if i%prefetchRun == prefetchRun-1 {
			prefetch(&p.addrs[i+1-prefetchRun], prefetchRun)
		}
	}
	if r := cnt % prefetchRun; r != 0 {
		prefetch(&p.addrs[cnt-r], r)
	}
}

// slotChunk reads, for each key of the chunk at base, the metadata that
// hashChunk prefetched a stage earlier and walks the key's chain as a
// lookup does, as far as the home's metadata line goes (those groups' tags
// came with the home's): at the first tag match it keeps the slot as the
// key's candidate and prefetches it (both ends when the 48-byte slot
// straddles two cache lines, half the time); where the chain ends first,
// the key is a miss, linearized at the read of the group that ended it,
// as a lookup's would be. The metadata of a moved home's next table is
// prefetched for the full lookup.
func (p *batchPipeline[V]) slotChunk(base int) {
	if base >= len(p.keys) {
		return
	}
	hs, cs := &p.hashes[base/batchWidth%3], &p.cands[base/batchWidth%3]
	tb := p.tb
	cnt, sent := 0, 0
	for i := range min(batchWidth, len(p.keys)-base) {
		if i%prefetchRun == 0 && cnt > sent {
			prefetch(&p.addrs[sent], cnt-sent)
			sent = cnt
		}
		g, tag := cs[i], tagOf(hs[i])
		w := tb.meta[g].tags.Load()
		if w >= movedWord {
			nt := tb.next.Load()
			ng, _ := nt.home(hs[i])
			p.addrs[cnt] = uintptr(unsafe.Pointer(&nt.meta[ng]))
			cnt++
			cs[i] = candLookup
			continue
		}
		reach := reachOf(w, tb.groups)
		cs[i] = candLookup
		q := tb.probeFrom(g)
		for d := 1; ; d++ {
			if marks := matchTag(w, tag); marks != 0 {
				c := q.g*groupSlots + firstByte(marks)
				s := &tb.slots[c]
				first, last := uintptr(unsafe.Pointer(&s.k[0])), uintptr(unsafe.Pointer(&s.v))
				p.addrs[cnt] = first
				cnt++
				if first/64 != last/64 {
					p.addrs[cnt] = last
					cnt++
				}
				cs[i] = c
				if marks &= marks - 1; marks != 0 {
					// A second match in the group: one of them is a
					// false match (one in 40 groups), which the full
					// lookup then walks past, so prefetch that one too.
					s := &tb.slots[q.g*groupSlots+firstByte(marks)]
					p.addrs[cnt] = uintptr(unsafe.Pointer(&s.k[4]))
					cnt++
				}
				break
			}
			if d >= reach || emptyBytes(w) != 0 {
				cs[i] = candMiss
				break
			}
			tb.advance(&q)
			if d == lineGroups {
				// The chain leaves the line: prefetch the next line's
				// metadata for the full lookup.
				p.addrs[cnt] = uintptr(unsafe.Pointer(&tb.meta[q.g]))
				cnt++
				break
			}
			w = tb.meta[q.g].tags.Load()
		}
	}
	prefetch(&p.addrs[sent], cnt-sent)
}
