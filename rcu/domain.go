package rcu

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Domain tracks read-side critical sections so that writers can wait for a
// grace period. One Domain serves any number of structures and readers;
// a structure that recycles memory typically owns one.
//
// # Protocol
//
// A global epoch counter e only grows. Reader counts live in stripes, each
// with two counters, one per epoch parity. A reader loads e, increments
// the counter of parity e&1 in a random stripe, and loads e again: if the
// epoch moved meanwhile it undoes the increment and starts over. So a
// reader is counted under the parity of the epoch that was current at the
// moment of its increment. Exit decrements that counter.
//
// The epoch advances from e to e+1 only when every stripe's counter of
// parity (e+1)&1 reads zero, that is when the readers counted under the
// previous epoch e-1 have all left (a compare-and-swap makes concurrent
// advancers agree). An object retired when the epoch read r is safe to reuse
// once the epoch reaches r+2:
//
//   - a reader that may hold it incremented before the retirement, so it is
//     counted under an epoch e' ≤ r;
//   - if e' = r, the advance r+1 → r+2 waited for parity r&1 to drain after
//     the retirement, so the reader had left;
//   - if e' ≤ r-1, the advance e'+1 → e'+2 ≤ r+1 did so likewise.
//
// The argument needs sequentially consistent atomics, which Go's are.
// Counters of one stripe never go negative, so a sum of zero across
// stripes read one by one is never a false "drained".
//
// # Guarantees
//
// Enter is lock-free (it retries only when the epoch advances between its
// two loads) and Exit is wait-free; neither allocates nor waits for
// writers. Readers write only their stripe's line. Domain.Enter takes a
// stripe from a per-P cache (a sync.Pool of stripe tokens), so readers on
// different Ps use different lines and one P keeps reusing its own; a
// long-lived reader goroutine can instead own a stripe through NewReader,
// which skips the cache. Synchronize blocks until
// a grace period has passed, which takes as long as the longest read
// section running at its start. A Domain must not be copied; create it
// with NewDomain.
type Domain struct {
	epoch atomic.Uint64 // only grows; advanced by CAS in tryAdvance
	_     [56]byte      // keep the epoch's line read-mostly: no stripe shares it

	stripes []stripe // immutable after NewDomain; length a power of two
	mask    uint32   // len(stripes)-1, immutable

	tokens sync.Pool     // of *stripe: a per-P cache of stripes for Enter
	next   atomic.Uint32 // round-robin stripe for new tokens and Readers
}

// stripe holds reader counts for the two epoch parities, alone on its
// cache line.
type stripe struct {
	active [2]atomic.Int64 // readers inside, by parity of their epoch; never negative
	domain *Domain         // immutable: where Exit returns the token
	_      [40]byte
}

// Guard is a read-side critical section in progress. End it with Exit,
// exactly once, on the goroutine of your choice. The zero Guard is not a
// valid section.
type Guard struct {
	count *atomic.Int64 // the stripe counter Enter incremented
	token *stripe       // the token to give back to the per-P cache; nil for a Reader's section
}

const (
	minStripes = 8
	maxStripes = 1024
)

// NewDomain returns a Domain with reader stripes sized for the current
// GOMAXPROCS (four per P, at least 8, at most 1024). A later rise in
// GOMAXPROCS stays correct; readers just share stripes more often.
func NewDomain() *Domain {
	n := min(max(4*runtime.GOMAXPROCS(0), minStripes), maxStripes)
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	d := &Domain{stripes: make([]stripe, n), mask: uint32(n - 1)}
	for i := range d.stripes {
		d.stripes[i].domain = d
	}
	d.tokens.New = func() any { return d.nextStripe() } // a pointer in an interface: no allocation
	return d
}

// nextStripe hands out stripes round robin.
func (d *Domain) nextStripe() *stripe { return &d.stripes[d.next.Add(1)&d.mask] }

// Enter starts a read-side critical section: objects loaded from
// structures this Domain protects are not reused before the returned
// Guard's Exit. Sections may nest and may overlap on one goroutine (each
// Enter needs its own Exit). Enter is lock-free and allocates nothing.
func (d *Domain) Enter() Guard {
	s := d.tokens.Get().(*stripe)
	g := d.enterStripe(s)
	g.token = s
	return g
}

// enterStripe counts a reader in stripe s under the current epoch.
func (d *Domain) enterStripe(s *stripe) Guard {
	for {
		if g, ok := d.enterAt(s, d.epoch.Load()); ok {
			return g
		}
	}
}

// enterAt counts a reader in stripe s under epoch e, if e is still the
// current epoch after the increment (see the protocol in Domain's doc).
func (d *Domain) enterAt(s *stripe, e uint64) (Guard, bool) {
	if enterHook != nil {
		enterHook()
	}
	c := &s.active[e&1]
	c.Add(1)
	if d.epoch.Load() != e {
		c.Add(-1) // the epoch moved under us: count again under the new one
		return Guard{}, false
	}
	return Guard{count: c}, true
}

// enterHook, when set by a test, runs between Enter's epoch load and its
// increment: the window where a reader can fall behind the epoch.
var enterHook func()

// Exit ends the critical section. It is wait-free. Calling Exit twice on
// one Guard, or on the zero Guard, is a bug that breaks grace periods; the
// zero Guard panics, a double Exit is not always detected.
func (g Guard) Exit() {
	if g.count.Add(-1) < 0 {
		panic("socktable/rcu: Guard.Exit called more often than Enter")
	}
	if g.token != nil {
		g.token.domain.tokens.Put(g.token)
	}
}

// Reader is a reader that owns one stripe of its Domain: for a long-lived
// goroutine (a stack's receive worker) that enters read sections in a
// loop. Its sections skip Domain.Enter's per-P cache and always write the
// same cache line. Readers are assigned stripes round robin, so up to the
// number of stripes (at least four per P) they do not share lines. A
// Reader may be used by one goroutine at a time, or by several if they
// accept sharing its line; it holds no resources and needs no Close.
type Reader struct {
	d *Domain // immutable
	s *stripe // immutable
}

// NewReader returns a Reader with its own stripe.
func (d *Domain) NewReader() *Reader { return &Reader{d: d, s: d.nextStripe()} }

// Enter starts a read-side critical section, as Domain.Enter does. It is
// lock-free and allocates nothing.
func (r *Reader) Enter() Guard { return r.d.enterStripe(r.s) }

// Epoch returns the current epoch, for diagnostics and tests. It only
// grows.
func (d *Domain) Epoch() uint64 { return d.epoch.Load() }

// tryAdvance moves the epoch forward by one if the readers it must wait for
// have all left. It reports whether the epoch moved (by this call or by a
// concurrent one).
func (d *Domain) tryAdvance() bool {
	e := d.epoch.Load()
	p := (e + 1) & 1
	for i := range d.stripes {
		if d.stripes[i].active[p].Load() != 0 {
			return false
		}
	}
	d.epoch.CompareAndSwap(e, e+1) // losing the race means another caller advanced it
	return true
}

// safe reports whether an object retired at epoch r may be reused now.
func (d *Domain) safe(r uint64) bool { return d.epoch.Load() >= r+2 }

// Synchronize waits for a grace period: when it returns, every read-side
// critical section that had begun before the call has ended. It blocks as
// long as the longest such section; sections that begin during the call
// do not prolong it indefinitely. It yields the processor while waiting,
// then sleeps with a backoff capped at one millisecond.
//
// Calling Synchronize inside a read-side critical section of the same
// Domain deadlocks: it would wait for itself.
func (d *Domain) Synchronize() { d.waitUntil(d.epoch.Load() + 2) }

// waitUntil advances the epoch until it reaches target.
func (d *Domain) waitUntil(target uint64) {
	backoff := time.Microsecond
	for spins := 0; d.epoch.Load() < target; {
		if d.tryAdvance() {
			continue
		}
		if waitHook != nil {
			waitHook()
		}
		if spins < 64 {
			spins++
			runtime.Gosched()
			continue
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// waitHook, when set by a test, runs each time Synchronize finds readers
// still inside and is about to wait.
var waitHook func()
