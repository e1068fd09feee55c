package accept

import (
	"context"
	"runtime"
)

// Acceptor is one accept() caller of a Sharded listener: bound to a shard,
// it takes from the shard's local queue, then the global one (and from the
// local queue of a shard left with no acceptor, should a drain have left
// connections there); Unbound, from the global queue, then any shard's
// local queue, so that a shard whose acceptors lag does not hold
// connections while others idle. An Acceptor is meant for one goroutine
// at a time; its Close may come from any goroutine.
type Acceptor[T any] struct {
	s     *Sharded[T]
	shard int            // Unbound or the shard
	home  *localShard[T] // the shard whose credits it gives back to: its own, or one in turn if unbound

	wake chan struct{} // a wake-up, sent by whoever took the acceptor off a parked list
	done chan struct{} // closed by Close

	// Guarded by s.mu.
	parked bool // on a parked list, waiting
	closed bool

	next    int    // an unbound acceptor's next local queue to look at
	wakeups uint64 // wake-ups received (tests)
}

// Shard returns the acceptor's shard, or Unbound.
func (a *Acceptor[T]) Shard() int { return a.shard }

// TryAccept takes a queued connection if there is one, without blocking
// or allocating.
func (a *Acceptor[T]) TryAccept() (T, bool) {
	item, _, ok, _ := a.take(false)
	return item, ok
}

// take is TryAccept that also says which shard's local queue the
// connection came from (nil: the global queue). If yielding, a queue
// whose head another acceptor claimed first is not tried again at once:
// take moves on, and if it finds nothing reports contended, for Accept to
// yield its P before it looks again (see errContended).
func (a *Acceptor[T]) take(yielding bool) (item T, from *localShard[T], ok, contended bool) {
	s := a.s
	if a.shard != Unbound {
		from = &s.shards[a.shard]
		item, ok = dequeueFrom(from.q, yielding, &contended)
	}
	if !ok {
		from = nil
		item, ok = dequeueFrom(s.global, yielding, &contended)
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
			from = sh
			item, ok = dequeueFrom(sh.q, yielding, &contended)
		}
	}
	if ok {
		s.release(a.home)
		contended = false
	}
	return item, from, ok, contended
}

// dequeueFrom is q.TryDequeue, or if yielding one attempt at q's head
// that sets *contended when another consumer claimed it first.
func dequeueFrom[T any](q *Queue[T], yielding bool, contended *bool) (T, bool) {
	if !yielding {
		return q.TryDequeue()
	}
	item, r := q.dequeueOnce()
	if r == pollContended {
		*contended = true
	}
	return item, r == pollOK
}

// passOn wakes another sleeping acceptor when connections remain in the
// queue this acceptor just took from (sh's local queue; nil: the global
// queue). A queue may have looked empty to the acceptor an Enqueue woke,
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
// sleeps (no spinning) until an Enqueue, a drain of a shard that lost its
// last acceptor, or a Migrate wakes it. It returns ctx.Err() if ctx ends
// first, and ErrClosed after the acceptor's or the listener's Close. It
// allocates nothing. On its first look, an acceptor that loses the head
// of a queue to another acceptor yields its P before it looks again, as
// Queue.Dequeue does.
func (a *Acceptor[T]) Accept(ctx context.Context) (T, error) {
	s := a.s
	var zero T
	for {
		item, from, ok, contended := a.take(true)
		if ok {
			a.passOn(from)
			return item, nil
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
		if item, from, ok, _ := a.take(false); ok {
			a.passOn(from)
			return item, nil
		}
	}
	for {
		if item, from, ok, _ := a.take(false); ok {
			a.passOn(from)
			return item, nil
		}
		if s.closed.Load() {
			return zero, ErrClosed
		}
		// Park, then look again: an Enqueue publishes its connection
		// before it looks for parked acceptors, and this acceptor is
		// visibly parked before it looks for connections, so one of the
		// two sees the other.
		s.mu.Lock()
		if a.closed {
			s.mu.Unlock()
			return zero, ErrClosed
		}
		a.park()
		s.mu.Unlock()
		if item, from, ok, _ := a.take(false); ok {
			a.unpark()
			a.passOn(from)
			return item, nil
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

// Close removes the acceptor: a blocked Accept returns ErrClosed. When it
// is the last acceptor bound to its shard, the shard's queued connections
// move to the global queue and sleeping acceptors are woken for them, so
// none is stranded. A second Close returns ErrClosed.
func (a *Acceptor[T]) Close() error {
	s := a.s
	s.mu.Lock()
	if a.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	a.closed = true
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
