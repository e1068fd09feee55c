// Package rcu gives Go programs read-copy-update: readers that never lock
// and never write a shared cache line, and writers that publish a new
// version with one atomic store.
//
// # What Go's garbage collector already does, and what it does not
//
// In the kernel, RCU is mostly about freeing: an object removed from a
// structure may only be freed once every reader that could hold it has
// left its read-side critical section (a grace period). In Go the garbage
// collector frees nothing a reader still holds, so publishing with
// Pointer and dropping the old version needs no grace period at all.
//
// A grace period is owed only where memory is reused: a node recycled
// through a free list, a slot of an open-addressing table rewritten in
// place, anything a zero-allocation hot path hands out again. A reader that
// loaded the old object may still be reading it; overwriting it under the
// reader would show a torn or foreign value. Domain tracks readers,
// Recycler holds retired objects until a grace period has passed, and
// only then hands them back for reuse.
//
// # Vocabulary
//
//   - A read-side critical section runs from Domain.Enter to Guard.Exit.
//     Objects loaded inside it stay unrecycled until it ends.
//   - A grace period is an interval during which every read-side critical
//     section that was running at its start has ended. Domain.Synchronize
//     waits for one.
//   - Retiring an object (Recycler.Retire) declares it unreachable for new
//     readers; it is reused (Recycler.Reuse) only after a grace period.
//
// # Design
//
// Domain is epoch based, with reader counts striped across cache-line
// padded slots so that readers on different cores do not write the same
// line (see Domain for the protocol and its proof sketch). Domain.Enter
// takes a stripe from a per-P cache and a Reader owns one, so a read
// section costs two uncontended atomic adds and two loads of a mostly
// read-only line, whatever the number of cores (BenchmarkRCUEnterExit:
// about 2.5 times faster than sync.RWMutex.RLock/RUnlock on 2 cores).
package rcu
