package timewait

import (
	"sync"
	"unsafe"
)

// timerNode is a Wheel's timer: the core's link (first: see wheelCore),
// the caller's value and the generation that invalidates stale handles.
// 32 bytes, so that a timer is one aligned half of a cache line: Cancel's
// generation check and its unlink read the same line.
type timerNode struct {
	link
	dataLo, dataHi uint32 // the caller's value, handed to the handler
	gen            uint32 // odd while pending: bumped at alloc and at release, so stale Timer handles miss
	_              uint32
}

// The core reaches a node's link through a *timerNode: it must come first.
var _ [0]struct{} = [unsafe.Offsetof(timerNode{}.link)]struct{}{}

func (m *timerNode) data() uint64     { return uint64(m.dataHi)<<32 | uint64(m.dataLo) }
func (m *timerNode) setData(d uint64) { m.dataLo, m.dataHi = uint32(d), uint32(d>>32) }

// maxNodes bounds a shard's slab: a Timer keeps 24 bits of index.
const maxNodes = 1 << 24

// shard is one independent wheel of a Wheel: its own lock, and a timing
// wheel whose slab holds the timers (grown 256 timers at a time).
type shard struct {
	mu   sync.Mutex
	core wheelCore[timerNode] // guarded by mu
	free int32                // free list head, through the links' next; guarded by mu
	used int                  // nodes handed out of the slab so far; guarded by mu

	// advanceMu serializes Advance on this shard: the batch buffer is
	// handed to the handler outside mu.
	advanceMu sync.Mutex
	due       []int32   // guarded by mu and advanceMu
	batch     []Expired // guarded by advanceMu
	_         [64]byte
}

func (s *shard) init(levels int, clk int64) {
	s.core.init(levels, clk)
	s.free = nilNode
}

// alloc takes a node from the free list, or from the slab, growing it by a
// chunk when it is used up, and returns its number and the node. It
// returns nilNode past maxNodes.
func (s *shard) alloc() (int32, *timerNode) {
	i := s.free
	if i == nilNode {
		return s.allocSlow()
	}
	n := s.core.node(i)
	s.free = n.next
	n.gen++ // odd: pending
	return i, n
}

//go:noinline
func (s *shard) allocSlow() (int32, *timerNode) {
	if s.used == maxNodes {
		return nilNode, nil
	}
	if s.used == len(s.core.nodes)*linkChunk {
		s.core.addChunk()
	}
	i := int32(s.used)
	s.used++
	n := s.core.node(i)
	n.gen++ // odd: pending
	return i, n
}

// release frees node i, which is n.
func (s *shard) release(i int32, n *timerNode) {
	n.gen++ // even: free
	n.next = s.free
	s.free = i
}

// pending returns node i if it is the pending timer of generation gen,
// or nil.
func (s *shard) pending(i int32, gen uint32) *timerNode {
	if int(i) >= s.used || gen&1 == 0 {
		return nil
	}
	if n := s.core.node(i); n.gen == gen {
		return n
	}
	return nil
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
		n := s.core.node(i)
		out = append(out, Expired{Timer: makeTimer(id, i, n.gen), Data: n.data()})
		s.release(i, n)
	}
	return out, more
}
