package timewait

import (
	"math/bits"
	"sync"
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

// nilNode ends bucket lists and the free list.
const nilNode = -1

// node is one timer in a shard's slab, addressed by index: 28 bytes, no
// pointers, so a million pending timers cost 28 MB the garbage collector
// never scans. Every field is 32 bits wide so that the node needs only
// 4-byte alignment (with an int64 in it, it would be padded to 32).
type node struct {
	expLo, expHi   uint32 // due tick
	dataLo, dataHi uint32 // the caller's value, handed to the handler
	next           int32  // next in the bucket, or in the free list
	prev           int32  // previous in the bucket; for the head, -1-bucket
	gen            uint32 // odd while pending: bumped at alloc and at release, so stale Timer handles miss
}

func (n *node) expires() int64     { return int64(uint64(n.expHi)<<32 | uint64(n.expLo)) }
func (n *node) setExpires(t int64) { n.expLo, n.expHi = uint32(t), uint32(uint64(t)>>32) }
func (n *node) data() uint64       { return uint64(n.dataHi)<<32 | uint64(n.dataLo) }
func (n *node) setData(d uint64)   { n.dataLo, n.dataHi = uint32(d), uint32(d>>32) }

// chunkBits sizes the slab's chunks: the slab grows by 512 nodes (14 KiB,
// exactly one of Go's allocation size classes: 256 nodes would be rounded
// up to 8 KiB, 32 bytes a node) at a time, so it never holds more than one
// chunk of unused nodes beyond the most timers ever pending at once
// (doubling a slice would waste up to half of it).
const (
	chunkBits = 9
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
	// maxNodes bounds a shard's slab: a Timer keeps 24 bits of index.
	maxNodes = 1 << 24
)

// shard is one independent wheel: its own lock, clock, buckets and slab.
type shard struct {
	mu     sync.Mutex
	clk    int64 // last tick processed; never decreases
	cursor int   // next level to drain at tick clk; levels when all are
	levels int
	heads  [maxLevels * levelSize]int32 // bucket lists, by level*levelSize + index
	busy   [maxLevels]uint64            // per level, a bit per non-empty bucket
	chunks [][]node                     // the slab
	free   int32                        // free list head
	used   int                          // nodes handed out of the slab so far
	count  atomic.Int64                 // pending timers; written under mu, read by Len

	// advanceMu serializes Advance on this shard: the batch buffer is
	// handed to the handler outside mu.
	advanceMu sync.Mutex
	batch     []Expired
	_         [64]byte
}

func (s *shard) init(levels int) {
	s.levels, s.cursor = levels, levels
	for i := range s.heads {
		s.heads[i] = nilNode
	}
	s.free = nilNode
}

func (s *shard) node(i int32) *node { return &s.chunks[i>>chunkBits][i&chunkMask] }

// alloc takes a node from the free list, or from the slab, growing it by a
// chunk when it is used up. It returns nilNode past maxNodes.
func (s *shard) alloc() int32 {
	i := s.free
	switch {
	case i != nilNode:
		s.free = s.node(i).next
	case s.used == maxNodes:
		return nilNode
	default:
		if s.used == len(s.chunks)*chunkSize {
			s.chunks = append(s.chunks, make([]node, chunkSize))
		}
		i = int32(s.used)
		s.used++
	}
	s.node(i).gen++ // odd: pending
	return i
}

func (s *shard) release(i int32) {
	n := s.node(i)
	n.gen++ // even: free
	n.next = s.free
	s.free = i
}

// pending reports whether node i is the pending timer of generation gen.
func (s *shard) pending(i int32, gen uint32) bool {
	return int(i) < s.used && gen&1 == 1 && s.node(i).gen == gen
}

// place links node i, due at tick expires, into the bucket that fires it
// first at or after expires: the finest level whose reach covers it,
// rounded up to that level's granularity. A timer already due goes to the
// next tick's bucket; one beyond the top level's reach to the top level's
// farthest bucket, to be placed again when that bucket comes due.
func (s *shard) place(i int32, expires int64) {
	n := s.node(i)
	n.setExpires(expires)
	due := max(expires, s.clk+1)
	level, slot := s.levels-1, int64(0)
	for l := range s.levels {
		shift := uint(l * levelClkShift)
		slot = (due + 1<<shift - 1) >> shift // ceil: never early
		if slot-s.clk>>shift <= levelReach {
			level = l
			break
		}
		if l == s.levels-1 {
			slot = s.clk>>shift + levelReach // beyond reach: the farthest bucket
		}
	}
	b := level*levelSize + int(slot&levelMask)
	n.prev = -1 - int32(b)
	n.next = s.heads[b]
	if n.next != nilNode {
		s.node(n.next).prev = i
	}
	s.heads[b] = i
	s.busy[level] |= 1 << (slot & levelMask)
}

// unlink removes pending node i from its bucket.
func (s *shard) unlink(i int32) {
	n := s.node(i)
	if n.prev >= 0 {
		s.node(n.prev).next = n.next
	} else { // the head of bucket -1-prev
		b := -1 - n.prev
		s.heads[b] = n.next
		if n.next == nilNode {
			s.busy[b/levelSize] &^= 1 << (b % levelSize)
		}
	}
	if n.next != nilNode {
		s.node(n.next).prev = n.prev // the next becomes the head if n was
	}
}

// nextDue returns the earliest tick after clk at which some bucket comes
// due, or false if no timer is pending.
func (s *shard) nextDue() (int64, bool) {
	best, found := int64(0), false
	for l := range s.levels {
		bm := s.busy[l]
		if bm == 0 {
			continue
		}
		shift := uint(l * levelClkShift)
		base := s.clk>>shift + 1 // the level's next bucket
		k := bits.TrailingZeros64(bits.RotateLeft64(bm, -int(base&levelMask)))
		due := (base + int64(k)) << shift
		if !found || due < best {
			best, found = due, true
		}
	}
	return best, found
}

// batchLimit bounds an expiry batch: a shard's lock is released, and the
// handler called, after at most this many timers, so a burst of expiries
// neither holds the lock for long nor grows a large buffer.
const batchLimit = 512

// collect moves the clock towards tick to and appends the timers that came
// due to out, freeing their nodes, until out holds batchLimit timers. It
// reports whether it stopped early (more may be due). It visits only the
// ticks at which a bucket comes due, so a long jump costs O(levels) per
// due bucket, not per tick. A tick's buckets are drained level by level
// from s.cursor, so a stop in the middle of one resumes where it left.
func (s *shard) collect(to int64, out []Expired, id uint8) ([]Expired, bool) {
	for {
		if s.cursor < s.levels {
			l := s.cursor
			shift := uint(l * levelClkShift)
			if l > 0 && s.clk&(1<<shift-1) != 0 {
				s.cursor = s.levels // not at this level's boundary, nor any coarser one's
				continue
			}
			var full bool
			if out, full = s.drain(l*levelSize+int(s.clk>>shift&levelMask), out, id); full {
				return out, true
			}
			s.cursor++
			continue
		}
		if s.clk >= to {
			return out, false
		}
		next, ok := s.nextDue()
		if !ok || next > to {
			s.clk = to
			return out, false
		}
		s.clk, s.cursor = next, 0
	}
}

// drain takes bucket b's timers into out until it is empty (then it
// reports false) or out is full. They are due, except those placed in the
// top level beyond its reach, which are placed again.
func (s *shard) drain(b int, out []Expired, id uint8) ([]Expired, bool) {
	for i := s.heads[b]; i != nilNode; i = s.heads[b] {
		if len(out) == batchLimit {
			return out, true
		}
		s.unlink(i)
		if n := s.node(i); n.expires() > s.clk {
			s.place(i, n.expires()) // not yet: a timer beyond the wheel's reach
		} else {
			out = append(out, Expired{Timer: makeTimer(id, i, n.gen), Data: n.data()})
			s.release(i)
			s.count.Add(-1)
		}
	}
	return out, false
}
