package rcu

import (
	"sync"

	"github.com/socktable/socktable/internal/errs"
)

// ErrCapacity is returned by NewRecycler for a limit below 1. It is the
// same value as the capacity sentinel of the other socktable packages.
var ErrCapacity = errs.ErrCapacity

// Recycler holds retired objects until a grace period of its Domain has
// passed, then hands them back for reuse: a free list that readers can
// never observe being rewritten under them.
//
// Use it where a hot path must not allocate. A writer unlinks an object so
// that new readers cannot reach it, calls Retire, and later takes memory
// from Reuse instead of allocating. Reuse returns objects in retirement
// order, each only after every read-side critical section that could have
// loaded it has ended.
//
// Memory is bounded: at most limit objects wait in the recycler. A Retire
// that finds it full waits for the grace period of the oldest object
// (blocking while a reader that may hold it is inside: the only time any
// method blocks) and then lets the garbage collector have that object
// instead of reusing it, counting it in Dropped. Where an object must not
// be lost (an index into the caller's own array), make limit at least the
// number of objects in circulation: the recycler then can never be full.
// Reuse never blocks. Retire and Reuse allocate nothing; the ring is
// allocated once by NewRecycler.
//
// Methods are serialized by an internal mutex held for a few loads and
// stores (never while waiting for readers): use one Recycler per writer
// shard where writers are many. A Recycler must not be copied.
type Recycler[T any] struct {
	domain *Domain // immutable

	mu    sync.Mutex
	ring  []retired[T] // guarded by mu; fixed length = limit
	head  int          // guarded by mu; index of the oldest entry
	count int          // guarded by mu; entries in the ring

	dropped uint64 // guarded by mu; objects given up because the ring was full
}

// retired is an object and the epoch read when it was retired.
type retired[T any] struct {
	x     T
	epoch uint64
}

// NewRecycler returns a Recycler for objects protected by d, holding at
// most limit retired objects. It returns ErrCapacity if limit < 1.
func NewRecycler[T any](d *Domain, limit int) (*Recycler[T], error) {
	if limit < 1 {
		return nil, ErrCapacity
	}
	return &Recycler[T]{domain: d, ring: make([]retired[T], limit)}, nil
}

// Retire hands over x, which the caller has already made unreachable for
// new readers (unpublished, unlinked). x comes back from Reuse after a grace
// period. If the recycler is full, Retire waits until its oldest object is
// safe, which blocks while a reader that may hold that object is inside.
func (r *Recycler[T]) Retire(x T) {
	r.mu.Lock()
	for r.count == len(r.ring) {
		oldest := r.ring[r.head].epoch
		r.mu.Unlock()
		// Wait without the lock so Reuse keeps working meanwhile.
		r.domain.waitUntil(oldest + 2)
		r.mu.Lock()
		if r.count == len(r.ring) && r.domain.safe(r.ring[r.head].epoch) {
			r.popLocked()
			r.dropped++
		}
	}
	// The epoch is read after the caller's unpublish (program order, and
	// Go's atomics are sequentially consistent): see Domain's protocol.
	tail := (r.head + r.count) % len(r.ring)
	r.ring[tail] = retired[T]{x: x, epoch: r.domain.epoch.Load()}
	r.count++
	r.mu.Unlock()
}

// popLocked removes and returns the oldest entry. Caller holds r.mu and
// has checked that the ring is not empty.
func (r *Recycler[T]) popLocked() T {
	x := r.ring[r.head].x
	r.ring[r.head] = retired[T]{} // the ring must not keep it alive for the GC
	r.head = (r.head + 1) % len(r.ring)
	r.count--
	return x
}

// Reuse returns the oldest retired object whose grace period has passed, or
// false if there is none yet. It never blocks: if the oldest object is not
// yet safe it tries once to advance the epoch.
func (r *Recycler[T]) Reuse() (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero T
	if r.count == 0 {
		return zero, false
	}
	e := r.ring[r.head].epoch
	// At most two advances are owed; try each once, without waiting. Every
	// successful try moved the epoch, so the loop ends.
	for !r.domain.safe(e) {
		if !r.domain.tryAdvance() {
			return zero, false
		}
	}
	return r.popLocked(), true
}

// Len returns the number of retired objects not yet handed back.
func (r *Recycler[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Dropped returns how many objects a full recycler has given up to the
// garbage collector instead of handing them back (see Recycler).
func (r *Recycler[T]) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}
