package timewait

import "sync"

// meta is what a Wheel keeps per timer beside the core's link: the
// caller's value and the generation that invalidates stale handles. 12
// bytes, so a pending timer costs 28 with its link.
type meta struct {
	dataLo, dataHi uint32 // the caller's value, handed to the handler
	gen            uint32 // odd while pending: bumped at alloc and at release, so stale Timer handles miss
}

func (m *meta) data() uint64     { return uint64(m.dataHi)<<32 | uint64(m.dataLo) }
func (m *meta) setData(d uint64) { m.dataLo, m.dataHi = uint32(d), uint32(d>>32) }

// maxNodes bounds a shard's slab: a Timer keeps 24 bits of index.
const maxNodes = 1 << 24

// shard is one independent wheel of a Wheel: its own lock, timing wheel
// and slab of timers (links in the core, payloads in metas, both grown
// 256 timers at a time).
type shard struct {
	mu    sync.Mutex
	core  wheelCore
	metas []*[linkChunk]meta
	free  int32 // free list head, through the links' next
	used  int   // nodes handed out of the slab so far

	// advanceMu serializes Advance on this shard: the batch buffer is
	// handed to the handler outside mu.
	advanceMu sync.Mutex
	due       []int32
	batch     []Expired
	_         [64]byte
}

func (s *shard) init(levels int, clk int64) {
	s.core.init(levels, clk)
	s.free = nilNode
}

func (s *shard) meta(i int32) *meta { return &s.metas[i>>linkChunkBits][i&linkChunkMask] }

// alloc takes a node from the free list, or from the slab, growing it by a
// chunk when it is used up. It returns nilNode past maxNodes.
func (s *shard) alloc() int32 {
	i := s.free
	switch {
	case i != nilNode:
		s.free = s.core.link(i).next
	case s.used == maxNodes:
		return nilNode
	default:
		if s.used == len(s.metas)*linkChunk {
			s.metas = append(s.metas, new([linkChunk]meta))
			s.core.addLinkChunk()
		}
		i = int32(s.used)
		s.used++
	}
	s.meta(i).gen++ // odd: pending
	return i
}

func (s *shard) release(i int32) {
	s.meta(i).gen++ // even: free
	s.core.link(i).next = s.free
	s.free = i
}

// pending reports whether node i is the pending timer of generation gen.
func (s *shard) pending(i int32, gen uint32) bool {
	return int(i) < s.used && gen&1 == 1 && s.meta(i).gen == gen
}

// batchLimit bounds an expiry batch: a shard's lock is released, and the
// handler called, after at most this many timers, so a burst of expiries
// neither holds the lock for long nor grows a large buffer.
const batchLimit = 512

// collect moves the shard's clock towards tick to and returns the timers
// that came due (at most batchLimit), freeing their nodes, and whether
// more may be due. The caller holds mu and advanceMu.
func (s *shard) collect(to int64, id uint8) ([]Expired, bool) {
	due, more := s.core.collect(to, s.due[:0], batchLimit)
	s.due = due[:0]
	out := s.batch[:0]
	for _, i := range due {
		m := s.meta(i)
		out = append(out, Expired{Timer: makeTimer(id, i, m.gen), Data: m.data()})
		s.release(i)
	}
	return out, more
}
