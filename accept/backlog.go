package accept

import "sync/atomic"

// backlog is a Sharded listener's limit on queued connections, kept as
// credits so that the shards share no counter: the listener starts with
// Backlog+1 credits in a pool, a TryEnqueue spends one, and the Accept that
// takes the connection gives it back. A shard's TryEnqueue calls draw from the
// shard's own word (localShard.credits), refilled a batch at a time from
// the pool; acceptors give back into their home shard's other word
// (localShard.returned), which passes each full batch back to the pool.
// The two words sit on different lines, so a connection's two steps touch
// the line of the core that queued it and the line of the core that
// accepted it, and the pool once per batch. One shared counter took two
// atomic adds per connection on a line every core wrote (the A/B is in
// BENCHMARKS.md). Near the limit some of the cost comes back: there a TryEnqueue finds its credit in
// the word an acceptor gave it back to.
//
// The limit stays exact: every queued connection holds a credit (or, if
// Migrate brought it in over the limit, a unit of extra), so at no moment
// are more than Backlog+1 queued. A TryEnqueue is refused only when no free
// credit is to be found: after its shard's word and the pool, it searches
// every shard's two words. The only credits a search can miss are those
// in the hands of calls running at the same time: an Accept's, between
// its take and its give-back; a batch between a shard's word and the pool
// or another shard's word (an Accept passing it back, a TryEnqueue drawing
// it, which keeps one and is about to leave the rest in its word). With a
// batch of one, which a limit (Backlog+1) below 16×Shards gets, that is
// exactly a single counter's slack; a larger batch widens the second kind
// to a batch per overlapping call.
//
// A search is O(Shards). So that a flood of connections to a full
// listener does not pay it at every TryEnqueue, state records a search that
// found nothing: a refused TryEnqueue announces its search (a new generation,
// phase searching), searches, and marks the generation full if it is
// still its own. Later TryEnqueue calls that see full give up after their own
// word and the pool. Every deposit of a credit (a give-back, a batch)
// looks at state after the credit lands and, unless the phase is open,
// moves it to a new generation that is open. So full never hides a credit:
// a deposit before an announcement is found by the search that follows
// it; one after it changes the generation, and the search's verdict is
// dropped (the atomics are sequentially consistent). The generation makes
// verdicts of overlapping searches safe: only the last announcement's
// searcher can mark full, and only if nothing was deposited since.
type backlog struct {
	pool atomic.Int64 // credits no shard holds
	_    [cacheLinePad - 8]byte

	// Read by every Accept and by refused TryEnqueue calls; written by searches,
	// by the deposits after one, and by Migrate.
	batch int64         // credits moved between the pool and a shard at a time; at least 1
	state atomic.Uint64 // generation<<2 | phase
	extra atomic.Int64  // connections migrated in over the limit, at most limit
	_     [cacheLinePad - 24]byte
}

// The phases of backlog.state.
const (
	phaseOpen      = 0 // credits may be anywhere: search before refusing
	phaseSearching = 1 // a TryEnqueue is searching every shard
	phaseFull      = 2 // that search found none, and nothing was deposited since it began
	phaseMask      = 3
)

// nextGeneration returns state word w's successor generation in phase p.
func nextGeneration(w, p uint64) uint64 { return (w>>2+1)<<2 | p }

// initBacklog gives s its limit's credits, all in the pool, and sets the
// batch: an eighth of a shard's fair share (at least 1), so that the
// shards' hoards (less than a batch in each word) leave most of the
// credits in the pool until the backlog is nearly full.
func (s *Sharded[T]) initBacklog() {
	s.backlog.batch = max(1, s.limit/int64(8*len(s.shards)))
	s.backlog.pool.Store(s.limit)
}

// acquire takes a credit for a connection arriving on shard i, and
// reports false if the backlog is full.
func (s *Sharded[T]) acquire(i int) bool {
	sh := &s.shards[i]
	if takeOne(&sh.credits) || s.refill(sh) {
		return true
	}
	if s.backlog.state.Load()&phaseMask == phaseFull {
		return false // full, and nothing deposited since
	}
	// Look in the other shards' words first without announcing anything:
	// near the limit, credits sit in the words the acceptors give back
	// to, and finding one must not cost writes to the state's line.
	if s.steal(i) {
		return true
	}
	if s.beforeAnnounce != nil {
		s.beforeAnnounce()
	}
	announced, ok := s.backlog.announce()
	if !ok {
		return false
	}
	// Every word again, this shard's own included: another TryEnqueue on it
	// may have left the rest of a batch there since it was looked at,
	// while nothing was announced for its deposit to see.
	found := takeOne(&sh.credits) || s.refill(sh) || s.steal(i)
	s.backlog.verdict(announced, found)
	return found
}

// steal looks for credits in every shard's two words, shard i's first
// (its acceptors give back to its returned word), and takes up to a batch
// from the first that has some: one for the caller, the rest left in
// shard i's word. false if every word was empty when looked at.
func (s *Sharded[T]) steal(i int) bool {
	sh := &s.shards[i]
	for k := range s.shards {
		j := i + k
		if j >= len(s.shards) {
			j -= len(s.shards)
		}
		for _, w := range [...]*atomic.Int64{&s.shards[j].returned, &s.shards[j].credits} {
			if w == &sh.credits {
				continue // looked at already
			}
			if n := takeUpTo(w, s.backlog.batch); n > 0 {
				if n > 1 {
					sh.credits.Add(n - 1)
					s.backlog.deposited()
				}
				return true
			}
		}
	}
	return false
}

// announce starts a search of every shard for a credit: it moves the
// state to a new generation in phase searching and returns that word, or
// reports false if the phase is full (no search needed).
func (b *backlog) announce() (uint64, bool) {
	for {
		w := b.state.Load()
		if w&phaseMask == phaseFull {
			return 0, false
		}
		announced := nextGeneration(w, phaseSearching)
		if b.state.CompareAndSwap(w, announced) {
			return announced, true
		}
	}
}

// verdict ends the search announced: it marks the generation full if the
// search found nothing, reopens it if it found a credit, and does neither
// if a deposit or another search has moved the state on since.
func (b *backlog) verdict(announced uint64, found bool) {
	if found {
		b.state.CompareAndSwap(announced, nextGeneration(announced, phaseOpen))
	} else {
		b.state.CompareAndSwap(announced, announced&^phaseMask|phaseFull)
	}
}

// refill takes up to a batch of credits from the pool, keeping one for
// the caller and leaving the rest in sh's word. false if the pool is
// empty.
func (s *Sharded[T]) refill(sh *localShard[T]) bool {
	b := &s.backlog
	for {
		n := b.pool.Load()
		if n <= 0 {
			return false
		}
		take := min(n, b.batch)
		if b.pool.CompareAndSwap(n, n-take) {
			if take > 1 {
				sh.credits.Add(take - 1)
				s.backlog.deposited()
			}
			return true
		}
	}
}

// release gives back the credit of a connection that left the queues (an
// Accept took it) or never entered them (its TryEnqueue failed after
// acquire): a unit of extra first, if Migrate brought any in, else a
// credit to sh's returned word, which passes each full batch to the pool.
func (s *Sharded[T]) release(sh *localShard[T]) {
	b := &s.backlog
	if b.extra.Load() > 0 && takeOne(&b.extra) {
		return
	}
	if n := sh.returned.Add(1); n >= b.batch && sh.returned.CompareAndSwap(n, n-b.batch) {
		b.pool.Add(b.batch)
	}
	s.backlog.deposited()
}

// deposited moves the state to a new, open generation after a credit
// landed in a shard's word or the pool, unless it is open already (see
// backlog). While it is, its cost is one load of a line rarely written.
func (b *backlog) deposited() {
	for {
		w := b.state.Load()
		if w&phaseMask == phaseOpen || b.state.CompareAndSwap(w, nextGeneration(w, phaseOpen)) {
			return
		}
	}
}

// reserveMigrated accounts for one connection migrating in: a credit if
// one is free, else a unit of extra while fewer than limit are used
// (Linux does not check the backlog of a migration's target; the global
// queue holds two limits, so it never refuses a shard's drain). false if
// both are exhausted or the listener is closed.
func (s *Sharded[T]) reserveMigrated() bool {
	if s.closed.Load() {
		return false
	}
	if s.acquire(0) {
		return true
	}
	b := &s.backlog
	for {
		n := b.extra.Load()
		if n >= s.limit {
			return false
		}
		if b.extra.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// unreserveMigrated gives back what reserveMigrated took for a connection
// that could not be queued after all. Credits and extra are fungible (an
// Accept may have used up the unit of extra reserved), so it gives back
// as an Accept does: a unit of extra if any is left, else a credit.
func (s *Sharded[T]) unreserveMigrated() { s.release(&s.shards[0]) }

// takeOne decrements c if it is positive, and reports whether it did.
func takeOne(c *atomic.Int64) bool { return takeUpTo(c, 1) == 1 }

// takeUpTo takes up to max from c if it is positive, and returns how much
// it took.
func takeUpTo(c *atomic.Int64, max int64) int64 {
	for {
		n := c.Load()
		if n <= 0 {
			return 0
		}
		take := min(n, max)
		if c.CompareAndSwap(n, n-take) {
			return take
		}
	}
}
