package timewait

import (
	"iter"
	"math/bits"
	"unsafe"
)

// Wheel geometry, as in Linux's kernel/time/timer.c.
const (
	levelBits     = 6 // 64 buckets per level
	levelSize     = 1 << levelBits
	levelMask     = levelSize - 1
	levelClkShift = 3 // each level 8 times coarser
	maxLevels     = 10
	// A level takes a timer whose bucket is at most this many of its
	// buckets ahead: one less than the level's size, so a bucket is never
	// both the one due now and one a full turn away.
	levelReach = levelSize - 1
)

// nilNode ends bucket lists and free lists.
const nilNode = -1

// link is what a timer costs the wheel: its due tick and its neighbours in
// its bucket's list. 16 bytes, no pointers; every field is 32 bits wide so
// that a link needs only 4-byte alignment.
type link struct {
	expLo, expHi uint32 // due tick
	next         int32  // next in the bucket (or in the owner's free list)
	prev         int32  // previous in the bucket; for the head, -1-bucket
}

func (n *link) expires() int64     { return int64(uint64(n.expHi)<<32 | uint64(n.expLo)) }
func (n *link) setExpires(t int64) { n.expLo, n.expHi = uint32(t), uint32(uint64(t)>>32) }

// linkChunkBits sizes the chunks nodes are kept in: 256 nodes of 16 bytes
// (a Table's links) or 32 (a Wheel's timers) are 4 or 8 KiB, and a Table's
// parallel chunks of 72-byte slots are an exact Go size class too, so no
// chunk is rounded up. A slab grows a chunk at a time and never holds more
// than one chunk of unused nodes beyond the most it ever had in use
// (doubling a slice would waste up to half of it).
const (
	linkChunkBits = 8
	linkChunk     = 1 << linkChunkBits
	linkChunkMask = linkChunk - 1
)

// wheelCore is one hierarchical timing wheel over nodes that its owner
// numbers: the owner allocates node numbers (a Wheel's timers, a Table's
// entry slots), grows the node slab in step with its own (addChunk), and
// holds its own lock around every call. The core keeps the buckets; it
// does not know what a node stands for.
//
// N is the owner's node type, kept in the core's slab so that what the
// owner keeps per timer shares the timer's cache line: it must be link
// itself or a struct whose first field is a link (the core reaches a
// node's link by converting a *N to a *link).
type wheelCore[N any] struct {
	clk    int64 // last tick processed; never decreases
	cursor int   // next level to drain at tick clk; levels when all are
	levels int
	n      int                          // pending nodes
	heads  [maxLevels * levelSize]int32 // bucket lists, by level*levelSize + index
	busy   [maxLevels]uint64            // per level, a bit per non-empty bucket
	nodes  []*[linkChunk]N
}

func (c *wheelCore[N]) init(levels int, clk int64) {
	c.levels, c.cursor, c.clk = levels, levels, clk
	for i := range c.heads {
		c.heads[i] = nilNode
	}
}

// node returns node i, which the slab holds.
func (c *wheelCore[N]) node(i int32) *N { return &c.nodes[i>>linkChunkBits][i&linkChunkMask] }

// link returns node i's link: the node's first field (see wheelCore).
func (c *wheelCore[N]) link(i int32) *link { return (*link)(unsafe.Pointer(c.node(i))) }

// addChunk grows the node slab by one chunk: nodes up to
// len(nodes)*linkChunk may then be scheduled.
func (c *wheelCore[N]) addChunk() { c.nodes = append(c.nodes, new([linkChunk]N)) }

// pendingCount returns the number of pending nodes.
func (c *wheelCore[N]) pendingCount() int { return c.n }

// schedule makes node i pending, due at tick expires; now is the current
// tick. An empty wheel's clock stops with its driver (or whenever no
// Advance came): schedule catches it up first, or the timer would be
// placed by its distance from a stale clock, in too coarse a level, and
// fire up to that level's granularity late. Nothing is pending then, so
// no bucket is skipped.
func (c *wheelCore[N]) schedule(i int32, expires, now int64) {
	c.catchUp(now)
	c.add(i, c.link(i), expires)
}

// catchUp moves an empty wheel's clock to the tick before tick now (see
// schedule); it does nothing if a node is pending or the clock is there
// already. Not to now itself: the next Advance, reading now, has yet to
// process that tick, and must fire a timer due at or before it, as it
// would in a wheel that was not empty (where such a timer goes to the
// bucket of clk+1).
func (c *wheelCore[N]) catchUp(now int64) {
	if c.n == 0 && now-1 > c.clk {
		c.clk, c.cursor = now-1, c.levels
	}
}

// add makes node i, whose link is n, pending, due at tick expires,
// without catching up.
func (c *wheelCore[N]) add(i int32, n *link, expires int64) {
	c.place(i, n, expires)
	c.n++
}

// reschedule moves pending node i to tick expires.
func (c *wheelCore[N]) reschedule(i int32, expires int64) {
	n := c.link(i)
	c.unlink(n)
	c.place(i, n, expires)
}

// cancel stops pending node i.
func (c *wheelCore[N]) cancel(i int32) { c.remove(c.link(i)) }

// remove stops the pending node whose link is n.
func (c *wheelCore[N]) remove(n *link) {
	c.unlink(n)
	c.n--
}

// place links node i, whose link is n, due at tick expires, into the
// bucket that fires it first at or after expires: the finest level whose
// reach covers it, rounded up to that level's granularity. A timer
// already due goes to the next tick's bucket; one beyond the top level's
// reach to the top level's farthest bucket, to be placed again when that
// bucket comes due.
func (c *wheelCore[N]) place(i int32, n *link, expires int64) {
	n.setExpires(expires)
	level, slot := c.bucketOf(max(expires, c.clk+1))
	b := uint(level)*levelSize + uint(slot&levelMask)
	n.prev = -1 - int32(b)
	n.next = c.heads[b]
	if n.next != nilNode {
		c.link(n.next).prev = i
	}
	c.heads[b] = i
	c.busy[level] |= 1 << (slot & levelMask)
}

// bucketOf returns the level and the bucket number (within the level, not
// yet reduced modulo levelSize) that fire tick due, which is after clk:
// the finest level whose reach covers due, and there due rounded up to
// the level's granularity, or the top level's farthest bucket if no level
// reaches it.
//
// A level l covers due when ceil(due/8^l) - floor(clk/8^l) ≤ levelReach,
// which implies that delta = due-clk ≤ levelReach·8^l: so with delta of
// bit length w, no level below (w-levelBits-1)/levelClkShift + 1 does
// (there delta ≥ 2^(w-1) ≥ 2^(3l+levelBits) > levelReach·8^l), and the
// search starts there. Covering is monotone in l, and the level after the
// start always covers (ceil(a) - floor(b) < a-b+2, and
// delta/8^(start+1) + 2 < 2^(w - 3·start - 3) + 2 ≤ 2^3+2), so the loop
// runs at most twice.
func (c *wheelCore[N]) bucketOf(due int64) (int, int64) {
	l := 0
	if w := bits.Len64(uint64(due - c.clk)); w > levelBits {
		l = (w-levelBits-1)/levelClkShift + 1
	}
	for ; l < c.levels; l++ {
		shift := uint(l*levelClkShift) & 63
		slot := (due-1)>>shift + 1 // ceil(due / 8^l), due ≥ 1: never early, never overflowing
		if slot-c.clk>>shift <= levelReach {
			return l, slot
		}
	}
	l = c.levels - 1
	return l, c.clk>>(uint(l*levelClkShift)&63) + levelReach // beyond reach
}

// unlink removes the pending node whose link is n from its bucket.
func (c *wheelCore[N]) unlink(n *link) {
	if n.prev >= 0 {
		c.link(n.prev).next = n.next
	} else { // the head of bucket -1-prev
		b := uint32(-1 - n.prev)
		c.heads[b] = n.next
		if n.next == nilNode {
			c.busy[b/levelSize] &^= 1 << (b % levelSize)
		}
	}
	if n.next != nilNode {
		c.link(n.next).prev = n.prev // the next becomes the head if n was
	}
}

// nextDue returns the earliest tick after clk at which some bucket comes
// due, or false if no timer is pending.
func (c *wheelCore[N]) nextDue() (int64, bool) {
	best, found := int64(0), false
	for l := range c.levels {
		bm := c.busy[l]
		if bm == 0 {
			continue
		}
		shift := uint(l * levelClkShift)
		base := c.clk>>shift + 1 // the level's next bucket
		k := bits.TrailingZeros64(bits.RotateLeft64(bm, -int(base&levelMask)))
		due := (base + int64(k)) << shift
		if !found || due < best {
			best, found = due, true
		}
	}
	return best, found
}

// collect moves the clock towards tick to and appends the nodes that came
// due to out (unlinked, no longer counted: the owner frees them), until
// out holds limit nodes. It reports whether it stopped early (more may be
// due). It visits only the ticks at which a bucket comes due, so a long
// jump costs O(levels) per due bucket, not per tick. A tick's buckets are
// drained level by level from c.cursor, so a stop in the middle of one
// resumes where it left.
func (c *wheelCore[N]) collect(to int64, out []int32, limit int) ([]int32, bool) {
	for {
		if c.cursor < c.levels {
			l := c.cursor
			shift := uint(l * levelClkShift)
			if l > 0 && c.clk&(1<<shift-1) != 0 {
				c.cursor = c.levels // not at this level's boundary, nor any coarser one's
				continue
			}
			var full bool
			if out, full = c.drain(l*levelSize+int(c.clk>>shift&levelMask), out, limit); full {
				return out, true
			}
			c.cursor++
			continue
		}
		if c.clk >= to {
			return out, false
		}
		next, ok := c.nextDue()
		if !ok || next > to {
			c.clk = to
			return out, false
		}
		c.clk, c.cursor = next, 0
	}
}

// drain takes bucket b's nodes into out until it is empty (then it
// reports false) or out holds limit nodes. They are due, except those
// placed in the top level beyond its reach, which are placed again.
func (c *wheelCore[N]) drain(b int, out []int32, limit int) ([]int32, bool) {
	for i := c.heads[b]; i != nilNode; i = c.heads[b] {
		if len(out) == limit {
			return out, true
		}
		n := c.link(i)
		c.unlink(n)
		if n.expires() > c.clk {
			c.place(i, n, n.expires()) // not yet: a timer beyond the wheel's reach
		} else {
			out = append(out, i)
			c.n--
		}
	}
	return out, false
}

// pending yields every pending node, in no particular order. The owner
// may reuse a yielded node (put it on a free list), but must not
// otherwise change the wheel meanwhile.
func (c *wheelCore[N]) pending() iter.Seq[int32] {
	return func(yield func(int32) bool) {
		for _, head := range c.heads {
			for j := head; j != nilNode; {
				next := c.link(j).next // yield may reuse j's link
				if !yield(j) {
					return
				}
				j = next
			}
		}
	}
}

// reset empties the wheel, keeping its clock; with dropNodes it also
// releases the node slab.
func (c *wheelCore[N]) reset(dropNodes bool) {
	for i := range c.heads {
		c.heads[i] = nilNode
	}
	clear(c.busy[:])
	c.n = 0
	c.cursor = c.levels
	if dropNodes {
		c.nodes = nil
	}
}
