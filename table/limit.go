package table

import (
	"runtime"
	"sync/atomic"
)

// entryLimit is the exact count EstablishedOptions.MaxEntries is checked
// against. It keeps, in one word, the number of counted entries (low 32
// bits) and the number of writes in flight (high 32 bits): writes that
// have changed the count but not yet what lookups see, or the other way
// round. The order of the steps keeps two invariants:
//
//   - the count is never below the number of visible entries;
//   - the count equals the number of visible entries whenever nothing is
//     in flight.
//
// An Insert counts its entry and enters flight in one compare-and-swap
// (reserve, only if the count is below the limit), makes the entry visible
// (the insert's linearization point), then leaves flight (commit). A
// Delete enters flight (enter), clears the entry's tag (its linearization
// point), then uncounts the entry and leaves flight in one add (release).
// So an Insert may report the limit only from a load that shows the count
// at the limit with nothing in flight: at that instant exactly the limit's
// number of entries is visible, and that load is the refusal's
// linearization point. Seeing writes in flight at the limit, it waits for
// them (wait) and tries again.
//
// The count used to be one counter, incremented before the entry was
// visible and decremented after it was gone: an Insert could then be
// refused while a Lookup had just seen the table below its limit.
type entryLimit struct {
	_     [64]byte      // state is written by every insert and delete
	state atomic.Uint64 // counted entries | writes in flight << 32
	_     [56]byte
}

const (
	limitCount    = 1<<32 - 1 // the count's bits
	limitInFlight = 1 << 32   // one write in flight
	// Adding limitCommit leaves flight; adding limitRelease also
	// uncounts an entry (both subtract, modulo 2^64).
	limitCommit  = 1<<64 - limitInFlight
	limitRelease = 1<<64 - limitInFlight - 1
)

// reserve counts one more entry and enters flight if the count is below
// max. Otherwise it reports putFull if nothing is in flight (the table
// is full at that load) and putBusy if writes are.
func (l *entryLimit) reserve(max uint64) putResult {
	for {
		s := l.state.Load()
		if s&limitCount >= max {
			if s>>32 == 0 {
				return putFull
			}
			return putBusy
		}
		if l.state.CompareAndSwap(s, s+1+limitInFlight) {
			return putPlaced
		}
	}
}

// commit ends an Insert's flight once its entry is visible.
func (l *entryLimit) commit() { l.state.Add(limitCommit) }

// enter starts a Delete's flight, before it clears the entry's tag.
func (l *entryLimit) enter() { l.state.Add(limitInFlight) }

// release uncounts a Delete's entry, once it is invisible, and ends the
// flight.
func (l *entryLimit) release() { l.state.Add(limitRelease) }

// wait returns once the count is below max or nothing is in flight. The
// writes in flight are a few stores each, made under group locks the
// waiter does not hold, so it spins a little and then yields its P: the
// writer may have been preempted.
func (l *entryLimit) wait(max uint64) {
	for spins := 0; ; spins++ {
		if s := l.state.Load(); s&limitCount < max || s>>32 == 0 {
			return
		}
		if spins > 16 {
			runtime.Gosched()
		}
	}
}
