package rcu

import "sync/atomic"

// Pointer is an RCU-published pointer to a read-mostly value: readers Load
// a snapshot and never write through it; writers build a new version and
// Publish it with one atomic store. A reader may see the previous version
// until the store; after it, every Load returns the new one.
//
// Load, Publish, Swap and CompareAndPublish are wait-free and allocate
// nothing. A Publish "synchronizes before" any Load that returns the
// published pointer, so a reader sees every write made to the value before
// it was published. Writes made after publishing are races: copy, modify
// the copy, publish the copy.
//
// The old version is reclaimed by the garbage collector once no reader
// holds it; only when the writer wants to reuse the old object itself (a
// free list) must it wait for a grace period (Recycler).
//
// The zero Pointer holds nil and is ready to use. A Pointer must not be
// copied after first use.
type Pointer[T any] struct {
	p atomic.Pointer[T] // the only state; atomic.Pointer carries a noCopy marker for vet
}

// Load returns the current version (nil before the first Publish).
func (p *Pointer[T]) Load() *T { return p.p.Load() }

// Publish makes v the current version.
func (p *Pointer[T]) Publish(v *T) { p.p.Store(v) }

// Swap publishes v and returns the version it replaced.
func (p *Pointer[T]) Swap(v *T) (old *T) { return p.p.Swap(v) }

// CompareAndPublish publishes v only if the current version is still old,
// and reports whether it did.
func (p *Pointer[T]) CompareAndPublish(old, v *T) bool { return p.p.CompareAndSwap(old, v) }

// Update publishes f(current) with a compare-and-publish loop and returns
// what it published. f must not modify the version it is given (readers
// may be reading it): it returns a new version built from a copy. f may
// run more than once when writers race; each run must be free of side
// effects. Update is lock-free: a retry means another writer published.
// If f returns the version it was given, nothing is published.
func (p *Pointer[T]) Update(f func(old *T) *T) *T {
	for {
		old := p.p.Load()
		v := f(old)
		if v == old || p.p.CompareAndSwap(old, v) {
			return v
		}
	}
}
