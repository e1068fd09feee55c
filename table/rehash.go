package table

import "unsafe"

// copyFrom fills tb, unpublished, with old's live entries (those whose
// hash keep accepts, if keep is not nil). old must be frozen. It returns
// the longest probe chain built. Two copies into one table add up.
//
// The copy reads old sequentially (the hardware prefetcher follows it) but
// writes tb at random: one memory miss for the destination's metadata and
// one for its slot per entry, and each atomic store waits for its line.
// So it runs as a three-stage software pipeline over chunks of entries,
// like LookupBatch: while one chunk is written, the slots of the next and
// the metadata of the one after are being prefetched.
func (tb *etable[V]) copyFrom(old *etable[V], mode valueMode, hash func(*key) uint64, keep func(uint64) bool) int {
	c := rehash[V]{dst: tb, src: old, mode: mode, hash: hash, keep: keep}
	c.gather(0)
	c.gather(1)
	c.prefetchSlots(0)
	for n := 0; c.lens[n%3] > 0; n++ {
		c.gather(n + 2)
		c.prefetchSlots(n + 1)
		c.place(n)
	}
	tb.count.add(uint64(c.copied) * (1 + usedOne))
	return c.longest
}

// rehashWidth is the entries per chunk of copyFrom's pipeline.
const rehashWidth = 32

// rehash is copyFrom's state: a cursor into the old table and three
// chunks of entries in flight, numbered n, kept in buffers n mod 3.
type rehash[V comparable] struct {
	dst, src *etable[V]
	mode     valueMode
	hash     func(*key) uint64
	keep     func(uint64) bool // nil: every entry

	g, i int // next slot of src to read

	chunks [3][rehashWidth]rehashEntry[V]
	lens   [3]int
	addrs  [2 * rehashWidth]uintptr

	copied, longest int
}

type rehashEntry[V comparable] struct {
	k key
	v V
	h uint64
}

// gather reads chunk n, the next live entries of src, hashes them and
// prefetches their home groups' metadata in dst.
func (c *rehash[V]) gather(n int) {
	chunk := &c.chunks[n%3]
	cnt := 0
	for ; cnt < rehashWidth && c.g < c.src.groups; c.i++ {
		if c.i == groupSlots {
			c.g, c.i = c.g+1, -1
			continue
		}
		if byteAt(c.src.meta[c.g].tags.Load(), c.i) < 2 {
			continue
		}
		e := &chunk[cnt]
		var ok bool
		if e.k, e.v, ok = c.src.slots[c.g*groupSlots+c.i].loadLive(c.mode); !ok {
			continue // unreachable: src is frozen, and its live tags mark live slots
		}
		if e.h = c.hash(&e.k); c.keep != nil && !c.keep(e.h) {
			continue
		}
		home, _ := c.dst.home(e.h)
		c.addrs[cnt] = uintptr(unsafe.Pointer(&c.dst.meta[home]))
		cnt++
	}
	c.lens[n%3] = cnt
	prefetch(&c.addrs[0], cnt)
}

// prefetchSlots prefetches, for each entry of chunk n, the slot it will
// most likely take: the first free one of its home group.
func (c *rehash[V]) prefetchSlots(n int) {
	chunk := &c.chunks[n%3]
	cnt := 0
	for k := range c.lens[n%3] {
		home, _ := c.dst.home(chunk[k].h)
		if free := freeBytes(c.dst.meta[home].tags.Load()); free != 0 {
			d := &c.dst.slots[home*groupSlots+firstByte(free)]
			c.addrs[cnt] = uintptr(unsafe.Pointer(&d.k[0]))
			c.addrs[cnt+1] = uintptr(unsafe.Pointer(&d.v))
			cnt += 2
		}
	}
	prefetch(&c.addrs[0], cnt)
}

// place writes chunk n's entries into dst, each in the first free slot of
// its probe chain (dst has room: it was sized for them).
func (c *rehash[V]) place(n int) {
	chunk := &c.chunks[n%3]
	for k := range c.lens[n%3] {
		e := &chunk[k]
		home, tag := c.dst.home(e.h)
		p := c.dst.probeFrom(home)
		probes := 1
		for freeBytes(c.dst.meta[p.g].tags.Load()) == 0 {
			c.dst.advance(&p)
			probes++
		}
		// dst is not published yet: plain stores suffice (the publishing
		// atomic store orders them before any reader's loads) and, unlike
		// atomic ones, do not each wait for their line.
		w := (*uint64)(unsafe.Pointer(&c.dst.meta[p.g].tags))
		j := firstByte(freeBytes(*w))
		c.dst.slots[p.g*groupSlots+j].fill(&e.k, e.v)
		*w = setByte(*w, j, tag)
		if probes > 1 {
			c.dst.displaced[home]++
			hw := (*uint64)(unsafe.Pointer(&c.dst.meta[home].tags))
			*hw = withReach(*hw, probes)
		}
		c.longest = max(c.longest, probes)
		c.copied++
	}
}
