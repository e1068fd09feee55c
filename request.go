package socktable

import (
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/internal/pshard"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// request is a SYN queue entry: a connection whose SYN a listener
// answered and whose final ACK it awaits (Linux's request_sock in state
// TCP_NEW_SYN_RECV). It lives in the established table under
// table.KindRequest, so the flow's next segments find it with the one
// lookup every segment makes.
//
// Requests come from a slab and are reused, never freed (Linux's
// SLAB_TYPESAFE_BY_RCU): a Deliver that loaded a request's pointer from
// the established table may find it removed and reused for another flow
// by the time it locks it, so every user locks mu and checks that the
// request is still live and still the flow it looked up (or the
// generation it was given) before it trusts a field. Memory stays
// type-stable, so the lock itself is always safe to take.
type request[C any] struct {
	mu sync.Mutex
	// The fields below are guarded by mu.
	live     bool
	gen      uint32 // advances each time the request is freed
	tuple    tuple.Tuple
	hash     uint64
	listener *Listener[C]
	iss, irs uint32
	tsRecent uint32
	tsOffset uint32
	mss      uint16
	wscale   uint8
	hasWS    bool
	sack     bool
	ts       bool
	// acked: the final ACK came while the accept queue was full
	// (tcp_abort_on_overflow=0): the SYN-ACK timer goes on so the peer
	// re-sends its ACK.
	acked bool
	// timeouts counts the request timer's firings (Linux's num_timeout):
	// 0 while the request is young.
	timeouts uint8
	timer    timewait.Timer

	// Immutable after the request is first made.
	index uint32
	// next links the request into its free stripe (index+1; 0 ends).
	next atomic.Uint32
}

// slabChunk is the number of requests allocated at once.
const slabChunk = 128

// requestSlab holds a Demux's requests. A request is taken at a SYN and
// given back when it completes, expires or is reset; the slab grows by
// chunks of slabChunk requests when none is free, and never shrinks, so
// its size is the SYN queues' peak (bounded by the listeners' backlogs and
// the established table's MaxEntries). Once warm (its peak reached), taking
// and giving back allocate nothing.
//
// Free requests are kept in lock-free stacks, one per stripe of Ps, so a
// SYN flood on many cores does not meet on one free list: get pops from
// the caller's stripe (then the others), put pushes on it. Each stack's
// head packs the top index+1 (low 32 bits) and a tag that advances on
// every pop (high 32 bits), so a pop that raced another pop and push of
// the same request fails its compare-and-swap (the ABA problem).
type requestSlab[C any] struct {
	grow    sync.Mutex                               // serializes growth
	chunks  atomic.Pointer[[]*[slabChunk]request[C]] // index / slabChunk → chunk
	stripes []freeStack
	mask    uint32
}

type freeStack struct {
	head atomic.Uint64
	_    [56]byte
}

func newRequestSlab[C any]() *requestSlab[C] {
	n := 1
	for n < min(runtime.GOMAXPROCS(0), pshard.Max) {
		n *= 2
	}
	s := &requestSlab[C]{stripes: make([]freeStack, n), mask: uint32(n - 1)}
	empty := []*[slabChunk]request[C]{}
	s.chunks.Store(&empty)
	return s
}

// at returns the request with index i.
func (s *requestSlab[C]) at(i uint32) *request[C] {
	chunks := *s.chunks.Load()
	if int(i/slabChunk) >= len(chunks) {
		return nil
	}
	return &chunks[i/slabChunk][i%slabChunk]
}

// get returns a free request, locked, growing the slab if none is free.
func (s *requestSlab[C]) get() *request[C] {
	home := pshard.Current() & s.mask
	for k := range uint32(len(s.stripes)) {
		if r := s.pop(&s.stripes[(home+k)&s.mask]); r != nil {
			r.mu.Lock()
			return r
		}
	}
	return s.growLocked(home)
}

func (s *requestSlab[C]) pop(st *freeStack) *request[C] {
	for {
		h := st.head.Load()
		top := uint32(h)
		if top == 0 {
			return nil
		}
		r := s.at(top - 1)
		next := r.next.Load()
		if st.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(next)) {
			return r
		}
	}
}

// put returns r, which the caller has unlocked after marking it not
// live, to the caller's stripe.
func (s *requestSlab[C]) put(r *request[C]) {
	st := &s.stripes[pshard.Current()&s.mask]
	for {
		h := st.head.Load()
		r.next.Store(uint32(h))
		if st.head.CompareAndSwap(h, h&^(1<<32-1)|uint64(r.index+1)) {
			return
		}
	}
}

// growLocked adds a chunk, pushes all but its first request on stripe
// home and returns the first, locked.
func (s *requestSlab[C]) growLocked(home uint32) *request[C] {
	s.grow.Lock()
	defer s.grow.Unlock()
	// Another get may have grown the slab meanwhile.
	for k := range uint32(len(s.stripes)) {
		if r := s.pop(&s.stripes[(home+k)&s.mask]); r != nil {
			r.mu.Lock()
			return r
		}
	}
	old := *s.chunks.Load()
	c := new([slabChunk]request[C])
	base := uint32(len(old)) * slabChunk
	for i := range c {
		c[i].index = base + uint32(i)
	}
	chunks := append(old[:len(old):len(old)], c)
	s.chunks.Store(&chunks)
	for i := slabChunk - 1; i >= 1; i-- {
		s.put(&c[i])
	}
	c[0].mu.Lock()
	return &c[0]
}

// all yields every live request, each locked while yield runs.
func (s *requestSlab[C]) all() iter.Seq[*request[C]] {
	return func(yield func(*request[C]) bool) {
		for _, c := range *s.chunks.Load() {
			for i := range c {
				r := &c[i]
				r.mu.Lock()
				if r.live && !yield(r) {
					r.mu.Unlock()
					return
				}
				r.mu.Unlock()
			}
		}
	}
}

// timerData packs a request's index and generation into a timer's data,
// so that a timer that fires after its request was reused is recognized.
func timerData(index, gen uint32) uint64 { return uint64(index)<<32 | uint64(gen) }

func splitTimerData(d uint64) (index, gen uint32) { return uint32(d >> 32), uint32(d) }
