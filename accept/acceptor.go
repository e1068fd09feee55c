package accept

import (
	"context"
	"runtime"
	"sync/atomic"
)

// Acceptor is one accept() caller of a Sharded listener: bound to a shard,
// it takes from the shard's local queue, then the global one (and from the
// local queue of a shard left with no acceptor, should a drain have left
// connections there); Unbound, from the global queue, then any shard's
// local queue, so that a shard whose acceptors lag does not hold
// connections while others idle.
//
// An Acceptor is meant for one goroutine at a time (its Accept and
// TryAccept calls); its Close may come from any goroutine, and is how
// another goroutine stops a blocked Accept.
//
// Closing: once the acceptor's Close, or the listener's, has marked it
// closed, it hands out no connection. A take races with Close, so every
// take checks the two closed flags after it has claimed a connection in a
// queue and before it releases the queue's cell: a connection taken while
// Close ran is put back, with its backlog credit, and the call returns
// ErrClosed. It goes back to the global queue, where any acceptor may
// take it (after connections queued behind it, perhaps), and a sleeping
// one is woken for it; once the listener is closed, it goes to what the
// listener's Drain hands back, and the listener's Close waits for that
// (for every cell claimed before the queues closed to be released, and
// for the put-backs to finish). An Accept or TryAccept that overlaps
// Close thus returns a connection only if its check came before Close
// marked it closed, and one that starts after Close returns ErrClosed.
type Acceptor[T any] struct {
	closed atomic.Bool // set by Close, under s.mu; loaded by every take

	s     *Sharded[T]    // immutable
	shard int            // Unbound or the shard; immutable
	home  *localShard[T] // the shard whose credits it gives back to: its own, or one in turn if unbound; immutable

	wake chan struct{} // a wake-up, sent by whoever took the acceptor off a parked list
	done chan struct{} // closed by Close

	parked bool // on a parked list, waiting; guarded by s.mu

	next    int    // an unbound acceptor's next local queue to look at; its calls only
	wakeups uint64 // wake-ups received (tests)

	afterTake func() // test hook: runs between a take's claim of a connection and its closed check; nil otherwise

	// 128 bytes in all (a size class of its own, objects 128-aligned), so
	// that the word every take loads (closed) and those the acceptor's
	// goroutine writes (next) are on no other acceptor's lines.
	_ [cacheLinePad - 80]byte
}

// Shard returns the acceptor's shard, or Unbound.
func (a *Acceptor[T]) Shard() int { return a.shard }

// TryAccept takes a queued connection if there is one, without blocking
// or allocating. It returns ErrEmpty when none is queued (the listener is
// open: try again later, or block in Accept), and ErrClosed after the
// acceptor's or the listener's Close, even with connections queued (see
// Acceptor for a TryAccept that overlaps Close). It is lock-free: it
// takes no lock (except to put back a connection it took as Close ran)
// and retries only when another acceptor took the connection it was
// after. It may report
// ErrEmpty while a TryEnqueue that it overlaps is still publishing its
// connection (see Sharded).
func (a *Acceptor[T]) TryAccept() (T, error) {
	var zero T
	if a.closed.Load() {
		return zero, ErrClosed
	}
	item, _, ok, _, err := a.accept(false)
	switch {
	case ok:
		return item, nil
	case err != nil:
		return zero, err
	case a.closed.Load() || a.s.closed.Load():
		return zero, ErrClosed
	}
	return zero, ErrEmpty
}

// accept is take made safe against Close. Between the claim of a
// connection's cell and its release it loads the acceptor's and the
// listener's closed flags: if either is set, it counts itself in
// s.putBacks, releases the cell, puts the connection back with its
// credit (putBack) and reports ErrClosed; otherwise it releases the cell
// and gives the connection's backlog credit back, and the connection is
// the caller's. The listener's Close stores its flag, closes the queues,
// then waits for the cells claimed before to be released and for
// s.putBacks to be 0; the atomics are sequentially consistent, so a take
// whose check missed the flag came before Close, and one that saw it is
// counted before Close can see its cell released.
func (a *Acceptor[T]) accept(yielding bool) (item T, from *localShard[T], ok, contended bool, err error) {
	q, c, pos, from, ok, contended := a.take(yielding)
	if !ok {
		return item, nil, false, contended, nil
	}
	if a.afterTake != nil {
		a.afterTake()
	}
	s := a.s
	if a.closed.Load() || s.closed.Load() {
		s.putBacks.Add(1)
		a.putBack(q.take(c, pos))
		s.putBacks.Add(-1)
		return item, nil, false, false, ErrClosed
	}
	item = q.take(c, pos)
	s.release(a.home)
	return item, from, true, false, nil
}

// take looks for a connection in the queues the acceptor takes from, in
// its order, and claims it: it returns the queue, the cell and position
// claimed (see Queue.claim), and which shard's local queue that is (nil:
// the global queue). The cell is not yet released, nor the connection's
// credit given back: accept does that. If yielding, a queue whose head
// another acceptor claimed first is not tried again at once: take moves
// on, and if it finds nothing reports contended, for Accept to yield its
// P before it looks again (see errContended).
func (a *Acceptor[T]) take(yielding bool) (q *Queue[T], c *cell[T], pos uint64, from *localShard[T], ok, contended bool) {
	s := a.s
	if a.shard != Unbound {
		from = &s.shards[a.shard]
		q = from.q
		c, pos, ok = claimFrom(q, yielding, &contended)
	}
	if !ok {
		from, q = nil, s.global
		c, pos, ok = claimFrom(q, yielding, &contended)
	}
	for range s.shards {
		if ok {
			break
		}
		// Nothing local or global: an unbound acceptor takes from any
		// shard's queue; a bound one only from a shard with no acceptor
		// left (whose drain could not move everything to a full global
		// queue), so that no connection is stranded.
		i := a.next
		a.next = (a.next + 1) % len(s.shards)
		if sh := &s.shards[i]; i != a.shard && (a.shard == Unbound || sh.acceptors.Load() == 0) {
			from, q = sh, sh.q
			c, pos, ok = claimFrom(q, yielding, &contended)
		}
	}
	if ok {
		contended = false
	}
	return q, c, pos, from, ok, contended
}

// putBack returns to the listener a connection that a take claimed while
// the acceptor's or the listener's Close ran, its backlog credit still
// held, so that the accounting stays exact: to the global queue, where
// any acceptor may take it, and a sleeping one is woken for it; or, once
// the listener is closed, to the connections its Drain hands back. The
// global queue has room: it holds two backlogs, and no more than that
// many connections are ever in the listener's hands (see drain), this one
// included; Enqueue waits out the instant in which a dequeue of its
// oldest cell may make it look full.
func (a *Acceptor[T]) putBack(item T) {
	s := a.s
	if !s.closed.Load() && s.global.Enqueue(context.Background(), item) == nil {
		s.wakeFor(nil)
		return
	}
	s.mu.Lock()
	s.returned = append(s.returned, item)
	s.mu.Unlock()
}

// claimFrom is q.claim, or if yielding one attempt at q's head that sets
// *contended when another consumer claimed it first.
func claimFrom[T any](q *Queue[T], yielding bool, contended *bool) (*cell[T], uint64, bool) {
	if !yielding {
		return q.claim()
	}
	c, h, r := q.claimOnce()
	if r == pollContended {
		*contended = true
	}
	return c, h, r == pollOK
}

// passOn wakes another sleeping acceptor when connections remain in the
// queue this acceptor just took from (sh's local queue; nil: the global
// queue). A queue may have looked empty to the acceptor a TryEnqueue woke,
// because an earlier enqueue had claimed the head of the ring and not yet
// published it; that enqueue's own wake-up then goes to this acceptor,
// which takes one connection and would leave the rest, woken for, with
// everyone else asleep. Its cost when no one sleeps is one atomic load;
// wakeFor takes the lock only if a sleeper could take from the queue.
func (a *Acceptor[T]) passOn(sh *localShard[T]) {
	s := a.s
	if s.parked.Load() == 0 {
		return
	}
	q := s.global
	if sh != nil {
		q = sh.q
	}
	if q.Len() > 0 {
		s.wakeFor(sh)
	}
}

// Accept takes a queued connection, waiting for one if none is queued: it
// sleeps (no spinning) until a TryEnqueue, a drain of a shard that lost its
// last acceptor, a Migrate or a put-back wakes it. It returns ctx.Err()
// if ctx ends first, and ErrClosed after the acceptor's or the listener's
// Close, even with connections queued (see Acceptor for an Accept that
// overlaps Close). It allocates nothing. With a connection queued it
// takes no lock; it takes the listener's lock to park and to be woken. On
// its first look, an acceptor that loses the head of a queue to another
// acceptor yields its P before it looks again, as Queue.Dequeue does.
func (a *Acceptor[T]) Accept(ctx context.Context) (T, error) {
	s := a.s
	var zero T
	if a.closed.Load() {
		return zero, ErrClosed
	}
	for {
		item, from, ok, contended, err := a.accept(true)
		if ok {
			a.passOn(from)
			return item, nil
		}
		if err != nil {
			return zero, err
		}
		if !contended {
			break
		}
		runtime.Gosched() // another acceptor is taking from the same queue: see errContended
	}
	// Poll a few times before parking, yielding once, as Queue.Dequeue
	// does: a producer about to enqueue (perhaps waiting for this P) is
	// cheaper to wait for than a park and a wake-up.
	for i := range spinPolls {
		if i == spinPolls-1 {
			runtime.Gosched()
		}
		if item, from, ok, _, err := a.accept(false); ok || err != nil {
			return a.accepted(item, from, err)
		}
	}
	for {
		if item, from, ok, _, err := a.accept(false); ok || err != nil {
			return a.accepted(item, from, err)
		}
		if s.closed.Load() || a.closed.Load() {
			return zero, ErrClosed
		}
		// Park, then look again: a TryEnqueue publishes its connection
		// before it looks for parked acceptors, and this acceptor is
		// visibly parked before it looks for connections, so one of the
		// two sees the other.
		s.mu.Lock()
		if a.closed.Load() {
			s.mu.Unlock()
			return zero, ErrClosed
		}
		a.park()
		s.mu.Unlock()
		if item, from, ok, _, err := a.accept(false); ok || err != nil {
			a.unpark()
			return a.accepted(item, from, err)
		}
		select {
		case <-a.wake:
			a.wakeups++
			continue
		case <-ctx.Done():
			a.unpark()
			return zero, ctx.Err()
		case <-s.closedCh:
			a.unpark()
			return zero, ErrClosed
		case <-a.done:
			a.unpark()
			return zero, ErrClosed
		}
	}
}

// accepted is Accept's return for a look that found a connection (err
// nil: it passes a wake-up on if others remain) or found Close (err).
func (a *Acceptor[T]) accepted(item T, from *localShard[T], err error) (T, error) {
	if err != nil {
		return item, err
	}
	a.passOn(from)
	return item, nil
}

// park puts the acceptor on its parked list; the caller holds s.mu.
func (a *Acceptor[T]) park() {
	s := a.s
	if a.shard == Unbound {
		s.parkedUnbound = append(s.parkedUnbound, a)
		s.unboundParked.Add(1)
	} else {
		sh := &s.shards[a.shard]
		sh.parked = append(sh.parked, a)
		sh.nParked.Add(1)
	}
	a.parked = true
	s.parked.Add(1)
}

// unpark takes the acceptor off its parked list when it stops waiting for
// another reason than a wake-up. If a waker took it off first, the wake-up
// meant a connection for it: it passes the wake-up on to another sleeping
// acceptor, so the connection is not left with no one awake to take it.
func (a *Acceptor[T]) unpark() {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.parked {
		if a.shard == Unbound {
			remove(&s.parkedUnbound, a)
			s.unboundParked.Add(-1)
		} else {
			sh := &s.shards[a.shard]
			remove(&sh.parked, a)
			sh.nParked.Add(-1)
		}
		a.parked = false
		s.parked.Add(-1)
		return
	}
	select {
	case <-a.wake:
		// It was for a connection in this acceptor's local queue or in
		// the global one: wake one that can take the first, and one that
		// can take the second (at worst one wakes for nothing).
		if a.shard != Unbound {
			s.wakeLocked(&s.shards[a.shard])
		}
		s.wakeLocked(nil)
	default:
	}
}

// Close removes the acceptor: a blocked Accept returns ErrClosed, and
// from then on Accept and TryAccept return ErrClosed (see Acceptor for
// calls that overlap Close). It takes the listener's lock. When it is the
// last acceptor bound to its shard, the shard's queued connections move
// to the global queue and sleeping acceptors are woken for them, so none
// is stranded. A second Close returns ErrClosed.
func (a *Acceptor[T]) Close() error {
	s := a.s
	s.mu.Lock()
	if a.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	a.closed.Store(true)
	close(a.done)
	s.mu.Unlock()
	if a.shard != Unbound {
		sh := &s.shards[a.shard]
		if sh.acceptors.Add(-1) == 0 {
			s.drain(sh)
		}
	}
	return nil
}
