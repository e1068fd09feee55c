package timewait

import (
	"iter"
	"math/bits"
	"sync/atomic"
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
// that a link needs only 4-byte alignment (with an int64 in it, a slab of
// links and a slab of 12-byte payloads would be padded).
type link struct {
	expLo, expHi uint32 // due tick
	next         int32  // next in the bucket (or in the owner's free list)
	prev         int32  // previous in the bucket; for the head, -1-bucket
}

func (n *link) expires() int64     { return int64(uint64(n.expHi)<<32 | uint64(n.expLo)) }
func (n *link) setExpires(t int64) { n.expLo, n.expHi = uint32(t), uint32(uint64(t)>>32) }

// linkChunkBits sizes the chunks links are kept in: 256 links are 4 KiB,
// and the owners' parallel chunks (a Wheel's 12-byte payloads, a Table's
// 72-byte slots) are exact Go size classes too, so no chunk is rounded up.
// A slab grows a chunk at a time and never holds more than one chunk of
// unused nodes beyond the most it ever had in use (doubling a slice would
// waste up to half of it).
const (
	linkChunkBits = 8
	linkChunk     = 1 << linkChunkBits
	linkChunkMask = linkChunk - 1
)

// wheelCore is one hierarchical timing wheel over nodes that its owner
// numbers: the owner allocates node numbers (a Wheel's timers, a Table's
// entry slots), grows the link slab in step with its own (addLinkChunk),
// and holds its own lock around every call. The core keeps the buckets;
// it does not know what a node stands for.
type wheelCore struct {
	clk    int64 // last tick processed; never decreases
	cursor int   // next level to drain at tick clk; levels when all are
	levels int
	heads  [maxLevels * levelSize]int32 // bucket lists, by level*levelSize + index
	busy   [maxLevels]uint64            // per level, a bit per non-empty bucket
	links  []*[linkChunk]link
	count  atomic.Int64 // pending nodes; written under the owner's lock, read by Len
}

func (c *wheelCore) init(levels int, clk int64) {
	c.levels, c.cursor, c.clk = levels, levels, clk
	for i := range c.heads {
		c.heads[i] = nilNode
	}
}

func (c *wheelCore) link(i int32) *link { return &c.links[i>>linkChunkBits][i&linkChunkMask] }

// addLinkChunk grows the link slab by one chunk: nodes up to
// len(links)*linkChunk may then be scheduled.
func (c *wheelCore) addLinkChunk() { c.links = append(c.links, new([linkChunk]link)) }

// schedule makes node i pending, due at tick expires; now is the current
// tick. An empty wheel's clock stops with its driver (or whenever no
// Advance came): schedule catches it up first, or the timer would be
// placed by its distance from a stale clock, in too coarse a level, and
// fire up to that level's granularity late. Nothing is pending then, so
// no bucket is skipped.
func (c *wheelCore) schedule(i int32, expires, now int64) {
	if c.count.Load() == 0 && now > c.clk {
		c.clk, c.cursor = now, c.levels
	}
	c.place(i, expires)
	c.count.Add(1)
}

// reschedule moves pending node i to tick expires.
func (c *wheelCore) reschedule(i int32, expires int64) {
	c.unlink(i)
	c.place(i, expires)
}

// cancel stops pending node i.
func (c *wheelCore) cancel(i int32) {
	c.unlink(i)
	c.count.Add(-1)
}

// place links node i, due at tick expires, into the bucket that fires it
// first at or after expires: the finest level whose reach covers it,
// rounded up to that level's granularity. A timer already due goes to the
// next tick's bucket; one beyond the top level's reach to the top level's
// farthest bucket, to be placed again when that bucket comes due.
func (c *wheelCore) place(i int32, expires int64) {
	n := c.link(i)
	n.setExpires(expires)
	due := max(expires, c.clk+1)
	level, slot := c.levels-1, int64(0)
	for l := range c.levels {
		shift := uint(l * levelClkShift)
		slot = (due + 1<<shift - 1) >> shift // ceil: never early
		if slot-c.clk>>shift <= levelReach {
			level = l
			break
		}
		if l == c.levels-1 {
			slot = c.clk>>shift + levelReach // beyond reach: the farthest bucket
		}
	}
	b := level*levelSize + int(slot&levelMask)
	n.prev = -1 - int32(b)
	n.next = c.heads[b]
	if n.next != nilNode {
		c.link(n.next).prev = i
	}
	c.heads[b] = i
	c.busy[level] |= 1 << (slot & levelMask)
}

// unlink removes pending node i from its bucket.
func (c *wheelCore) unlink(i int32) {
	n := c.link(i)
	if n.prev >= 0 {
		c.link(n.prev).next = n.next
	} else { // the head of bucket -1-prev
		b := -1 - n.prev
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
func (c *wheelCore) nextDue() (int64, bool) {
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
func (c *wheelCore) collect(to int64, out []int32, limit int) ([]int32, bool) {
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
func (c *wheelCore) drain(b int, out []int32, limit int) ([]int32, bool) {
	for i := c.heads[b]; i != nilNode; i = c.heads[b] {
		if len(out) == limit {
			return out, true
		}
		c.unlink(i)
		if n := c.link(i); n.expires() > c.clk {
			c.place(i, n.expires()) // not yet: a timer beyond the wheel's reach
		} else {
			out = append(out, i)
			c.count.Add(-1)
		}
	}
	return out, false
}

// pending yields every pending node, in no particular order. The owner
// may reuse a yielded node's link (put it on a free list), but must not
// otherwise change the wheel meanwhile.
func (c *wheelCore) pending() iter.Seq[int32] {
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

// reset empties the wheel, keeping its clock; with dropLinks it also
// releases the link slab.
func (c *wheelCore) reset(dropLinks bool) {
	for i := range c.heads {
		c.heads[i] = nilNode
	}
	clear(c.busy[:])
	c.count.Store(0)
	c.cursor = c.levels
	if dropLinks {
		c.links = nil
	}
}
