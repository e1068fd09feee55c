package accept

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// MaxCapacity is the largest capacity NewQueue accepts (after rounding up
// to a power of two).
const MaxCapacity = 1 << 30

const (
	// closedBit is set by Close in Queue.tail, then in Queue.head.
	// Positions stay below it (2^63 enqueues is three centuries at 10^9 a
	// second), so a set bit makes every later CAS of a producer (on tail)
	// or a consumer (on head) that loaded the open word fail.
	closedBit = 1 << 63

	// cacheLinePad keeps the producers' counter, the consumers' counter and
	// the sleepers' words on lines of their own: 128 bytes, because x86
	// prefetches lines in adjacent pairs and arm64 servers have 128-byte
	// lines.
	cacheLinePad = 128

	// spinPolls is how many times Dequeue polls an empty queue before it
	// parks; the last poll follows a runtime.Gosched, which lets run a
	// goroutine waiting for this P (a producer this consumer woke is put
	// there, and runs nowhere else until this P lets it). The spin is short
	// on purpose (BenchmarkQueue compares longer spins, and producers
	// spinning too): a consumer polling the head cell pulls the line the
	// producer is writing back and forth, each transfer costing more than
	// a dequeue, while a consumer that parks and is woken after the
	// producer has run ahead takes a run of items from lines the producer
	// has left.
	spinPolls = 4
)

// Queue is a bounded multi-producer multi-consumer FIFO: Vyukov's bounded
// MPMC ring (1024cores.net, "Bounded MPMC queue"; the design of rigtorp's
// MPMCQueue and xsync's MPMCQueue), with Close, and with a blocking
// Dequeue and Enqueue that park the goroutine instead of spinning.
//
// Each cell holds a sequence number and a value. The sequence number of
// the cell for position p (index p mod Cap) is p while the cell is free for
// the enqueue at p, p+1 once that enqueue has published its item, and
// p+Cap once the dequeue at p has taken the item back out, which frees the
// cell for the enqueue at p+Cap. Enqueue at p:
//
//  1. load tail (= p), load the cell's seq: p means free (CAS tail p→p+1 to
//     claim it), less means full (the dequeue at p-Cap has not released
//     the cell), more means another producer claimed p (reload tail);
//  2. write the value into the claimed cell;
//  3. publish: store seq = p+1.
//
// Dequeue mirrors it on head, waiting for seq = p+1 and releasing the cell
// with seq = p+Cap. Close sets a closed bit in tail, then in head, so
// that both sides' claims fail from then on; the items left in the ring
// stay there for Drain. The value is written only between a claim and a
// publish, read only between a CAS on head and the release, so the seq
// store/load pairs order every access to it (acquire/release would do;
// Go's atomics are sequentially consistent, which the parking protocol of
// Dequeue and Enqueue needs).
//
// The zero Queue is not usable: create one with NewQueue. A Queue must not
// be copied after first use.
//
// Concurrency: every method is safe for concurrent use. TryEnqueue and
// TryDequeue are lock-free: each retries only when another call of the
// same kind claimed the position it was trying, so some call always
// completes; they never wait for another call and never allocate, and
// take a lock only to wake a goroutine parked on the other side (none
// while no one parks). Len and Cap are wait-free. A TryEnqueue or
// Enqueue that returns nil "synchronizes before" the dequeue or Drain
// that returns its item. Dequeue and Enqueue may block, and while they
// block cost nothing: they park on a channel until the other side or
// Close wakes them, taking a short lock to enrol and to be woken. Close
// takes that lock to wake the parked goroutines, and may wait (yielding
// its P) for enqueues that had claimed a position when it ran. Drain is
// lock-free as TryDequeue, and allocates the slice it returns. See the
// package doc for where the failures (empty, full) are weaker than
// linearizable.
//
// Memory: Cap cells of 56 bytes plus the size of T each (64 for a pointer,
// so that neighbouring cells, which a producer and a consumer use at the
// same moment, are on different cache lines), and 472 bytes.
type Queue[T any] struct {
	cells []cell[T] // immutable after NewQueue; len is a power of two
	mask  uint64    // len(cells)-1; immutable after NewQueue
	_     [cacheLinePad - 32]byte

	// tail is the next position to enqueue at, with closedBit once Close
	// has run. Written by producers (CAS, claiming a position) and by
	// Close (Or, setting closedBit).
	tail atomic.Uint64
	_    [cacheLinePad - 8]byte

	// head is the next position to dequeue from. Written by consumers and
	// Close, each by a CAS that claims a published cell.
	head atomic.Uint64
	_    [cacheLinePad - 8]byte

	// The parked goroutines: consumers waiting for an item, producers
	// waiting for room. Their sleepers words are loaded by every enqueue
	// and every dequeue respectively, and change only when a goroutine
	// parks or is woken, so this line stays shared in every core's cache
	// while no one parks.
	consumers, producers sleepers
	mu                   sync.Mutex // guards both waiter lists and the waiters in them
	// closeDone is closed when the first Close has finished, so that a
	// second one returns only then; immutable header after NewQueue.
	closeDone chan struct{}

	// Test hooks (export_test.go); nil otherwise. enrollHook runs when a
	// Dequeue that found the queue empty, or an Enqueue that found it full,
	// is about to enrol; parkHook after it enrolled and just before it
	// blocks; wakeHook each time it is woken by the other side or by
	// Close. closeWaitHook runs each time Close waits for an in-flight
	// enqueue.
	enrollHook, parkHook, wakeHook func(producer bool)
	closeWaitHook                  func()
}

// cell is one slot of the ring; see Queue for the meaning of seq.
type cell[T any] struct {
	seq atomic.Uint64
	val T        // written by the producer that claimed the cell, read by the consumer that claimed it
	_   [48]byte // a cell of an 8-byte T (a pointer, the accept queue's case) fills a 64-byte line
}

// sleepers is one side's parked goroutines.
type sleepers struct {
	// n counts the goroutines enrolled to park: in waiters, or between
	// enrolling and re-checking the queue under Queue.mu. Changed only
	// under Queue.mu; loaded without it by the other side, which takes the
	// lock to wake one only when n is not zero, so neither side pays more
	// than one load while no one sleeps.
	n       atomic.Int32
	waiters waiterList // oldest first; guarded by Queue.mu
}

// NewQueue returns an empty queue holding at least capacity items:
// capacity rounded up to a power of two, and to at least 2 (Cap reports
// it), so that a position maps to its cell with a mask. It returns
// ErrCapacity for a capacity below 1 or above MaxCapacity.
func NewQueue[T any](capacity int) (*Queue[T], error) {
	if capacity < 1 || capacity > MaxCapacity {
		return nil, ErrCapacity
	}
	// At least 2 cells: with one, the seq of a published cell (p+1) would
	// equal that of the cell freed for the next lap (p+Cap).
	n := max(uint64(1)<<bits.Len64(uint64(capacity-1)), 2)
	q := &Queue[T]{cells: make([]cell[T], n), mask: n - 1, closeDone: make(chan struct{})}
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
	return q, nil
}

// Cap returns the number of items the queue holds when full: the capacity
// given to NewQueue rounded up to a power of two, at least 2. It is
// wait-free.
func (q *Queue[T]) Cap() int { return len(q.cells) }

// Len returns the number of items in the queue (after Close, those left
// for Drain), counting an item whose enqueue has claimed its position as
// in the queue, and one whose dequeue has claimed it as gone. It is
// wait-free: two atomic loads. Under concurrency it is approximate: the
// two counters it reads are not read at one instant, so the result is
// one the queue held at some moment during the call, or (if calls
// completed meanwhile) within the number of concurrent calls of it; it is
// always between 0 and Cap.
func (q *Queue[T]) Len() int {
	h := q.head.Load() &^ closedBit // head first: tail ≥ head then holds for the pair
	t := q.tail.Load() &^ closedBit
	return int(min(t-h, q.mask+1))
}

// TryEnqueue adds v at the tail of the queue. It returns ErrQueueFull if
// the queue is full, and ErrClosed after Close (ErrClosed wins if both
// hold). It never waits for room or for another call, and never
// allocates; it takes the queue's lock only to wake a parked consumer
// (while none is parked, that costs one atomic load). This is the receive
// path's call: a stack must not wait for the application, and drops or
// resets on a full backlog instead.
//
// ErrQueueFull may also be returned while a dequeue of the oldest item
// has claimed its cell and not yet released it (a window of a few
// instructions; see the package doc).
func (q *Queue[T]) TryEnqueue(v T) error {
	for {
		if err := q.enqueueOnce(v); err != errContended {
			return err
		}
	}
}

// errContended is enqueueOnce's answer when another producer claimed the
// position it tried: the caller tries again (TryEnqueue at once, Enqueue
// after yielding its P).
//
// Why the blocking calls yield after losing a position.
// A lost CAS means another call of the same side is running on another
// core at this moment, and the counter's cache line is travelling between
// the two. Retrying at once keeps it travelling, so that two consumers
// draining a full ring alone are many times slower per item than one.
// Yielding does two things. Where goroutines outnumber Ps (4 goroutines
// on 2 Ps in BenchmarkQueue p=2/c=2), it hands the P to a runnable
// goroutine, most likely one of the other side, so that producers and
// consumers run side by side instead of in same-side pairs; where every
// goroutine has a P of its own, it is a back-off of one trip through the
// scheduler, letting the winner finish with the line (BENCHMARKS.md has
// the figures for both). It is what xsync's MPMCQueue leaves to its
// callers (its TryEnqueue fails on a lost CAS). A yield
// follows only another call's success (or Close's), so an idle queue
// still costs nothing: it is not a spin. Only the first attempts yield:
// once Enqueue finds the queue full, or Dequeue finds it empty, their
// slow paths retry at once, as the other side is then what they wait for.
var errContended = errors.New("accept: position claimed by another call")

// enqueueOnce is one attempt of TryEnqueue at the position tail holds:
// nil, ErrClosed or ErrQueueFull as TryEnqueue, or errContended if another
// producer claimed that position first (or Close set the closed bit
// between the load and the claim: the next attempt sees it).
func (q *Queue[T]) enqueueOnce(v T) error {
	t := q.tail.Load()
	if t&closedBit != 0 {
		return ErrClosed
	}
	c := &q.cells[t&q.mask]
	seq := c.seq.Load()
	if seq == t {
		if !q.tail.CompareAndSwap(t, t+1) {
			return errContended
		}
		c.val = v
		c.seq.Store(t + 1) // published
		// Publish, then look for sleepers: the other half of
		// enroll's announce-then-recheck (see dequeueSlow).
		if q.consumers.n.Load() != 0 {
			q.wakeOne(&q.consumers)
		}
		return nil
	}
	if int64(seq-t) < 0 {
		// The dequeue at t-Cap has not released the cell. As seq only
		// grows, it had not when tail was loaded either: the queue was
		// full then (or that dequeue was in flight), and not closed.
		return ErrQueueFull
	}
	return errContended // another producer claimed t and tail moved on
}

// Enqueue adds v at the tail of the queue, waiting for room if the queue
// is full. It returns ctx.Err() if ctx is done while it waits (if there is
// room, v is enqueued even if ctx is done), and ErrClosed after Close,
// including to a parked Enqueue, which Close wakes. It does not allocate
// when there is room.
//
// Enqueue is for producers that may wait, such as a goroutine handing
// connections to another; the receive path uses TryEnqueue. A full
// producer parks at once (it does not spin: polling the cell a consumer is
// about to release slows the consumer down), on the protocol Dequeue uses
// with the sides swapped: it enrols, checks for room again, and blocks
// until a dequeue that frees a cell, Close, or ctx wakes it. It does not
// park while the dequeue of the oldest item is in flight (it waits for
// the release instead), and a producer whose ctx is done passes a wake-up
// it was given on to another.
//
// While the queue has room, an Enqueue that loses the position it tried
// to another producer yields its P (runtime.Gosched) before it tries
// again, where TryEnqueue retries at once; Dequeue does the same against
// consumers while items are queued (see errContended for why).
func (q *Queue[T]) Enqueue(ctx context.Context, v T) error {
	for {
		err := q.enqueueOnce(v)
		switch err {
		case errContended:
			runtime.Gosched()
			continue
		case ErrQueueFull:
			return q.enqueueSlow(ctx, v)
		}
		return err
	}
}

// enqueueSlow is Enqueue on a full queue. Why no wake-up is missed: see
// dequeueSlow, with producers for consumers, a release (store of p+Cap to
// seq) for a publish, and "tail - head < Cap" (a free cell, or a dequeue
// claimed and releasing one) for "tail ≠ head".
//
//go:noinline
func (q *Queue[T]) enqueueSlow(ctx context.Context, v T) error {
	woken := false // a wake-up was spent on this call and v not yet enqueued
	for {
		err := q.TryEnqueue(v)
		if err != ErrQueueFull {
			return err
		}
		h := q.head.Load() &^ closedBit
		if t := q.tail.Load(); t&closedBit == 0 && t-h < q.mask+1 {
			// A dequeue has claimed the oldest cell and not yet released
			// it: wait for the release rather than park behind it.
			if err := ctx.Err(); err != nil {
				q.abandon(woken, true)
				return err
			}
			runtime.Gosched() // the consumer may be waiting for this P
			continue
		}
		// Full: whatever this call was woken for has been taken.
		woken = false
		if err := ctx.Err(); err != nil {
			return err
		}
		if q.enrollHook != nil {
			q.enrollHook(true)
		}
		w := q.enroll(&q.producers, true)
		if w == nil {
			continue // room, or Close: try again
		}
		if woken, err = q.park(ctx, w, &q.producers, true); err != nil {
			q.abandon(woken, true)
			return err
		}
	}
}

// TryDequeue removes and returns the item at the head of the queue, or
// reports false if there is none, and after Close (the items left are
// Drain's). It never waits for an item or for another call, and never
// allocates; it takes the queue's lock only to wake a parked producer
// (while none is parked, that costs one atomic load).
//
// It may report false while the queue holds items: when the enqueue that
// claimed the head position has not yet published its item, TryDequeue
// does not look past it, even if later enqueues have completed (Vyukov's
// ring keeps FIFO order that way). The enqueue is then in flight at the
// moment TryDequeue reads the cell: a false is always explained by an
// empty queue or by an enqueue concurrent with the call.
func (q *Queue[T]) TryDequeue() (T, bool) {
	c, h, ok := q.claim()
	if !ok {
		var zero T
		return zero, false
	}
	return q.take(c, h), true
}

// claim is TryDequeue up to its claim of the head: it returns the cell
// claimed for position h, its item not yet taken out (take does that, and
// releases the cell), or reports false as TryDequeue does. Until the
// cell's release, the queue is as it is while a dequeue is preempted
// between its CAS and its release; Acceptor uses the window to check
// whether it may keep the item.
func (q *Queue[T]) claim() (c *cell[T], h uint64, ok bool) {
	for {
		if c, h, r := q.claimOnce(); r != pollContended {
			return c, h, r == pollOK
		}
	}
}

// dequeueOnce is one attempt of TryDequeue at the position head holds:
// pollOK with the item, pollEmpty if that position is unpublished (empty,
// or its enqueue in flight: unlike poll, it does not tell them apart),
// pollClosed after Close, or pollContended if another consumer (or
// Drain) claimed it first.
func (q *Queue[T]) dequeueOnce() (T, pollResult) {
	c, h, r := q.claimOnce()
	if r != pollOK {
		var zero T
		return zero, r
	}
	return q.take(c, h), pollOK
}

// claimOnce is dequeueOnce up to its claim (see claim).
func (q *Queue[T]) claimOnce() (*cell[T], uint64, pollResult) {
	h := q.head.Load()
	if h&closedBit != 0 {
		return nil, 0, pollClosed
	}
	c := &q.cells[h&q.mask]
	seq := c.seq.Load()
	if seq == h+1 {
		if !q.head.CompareAndSwap(h, h+1) {
			return nil, 0, pollContended
		}
		return c, h, pollOK
	}
	if int64(seq-(h+1)) < 0 {
		return nil, 0, pollEmpty // unpublished: empty, or its enqueue is in flight
	}
	return nil, 0, pollContended // another consumer claimed h and head moved on
}

// take moves the value out of cell c, which the caller claimed for
// position h, releases the cell to the enqueue at h+Cap, and wakes a
// parked producer if there is one, as TryDequeue does.
func (q *Queue[T]) take(c *cell[T], h uint64) T {
	var zero T
	v := c.val
	c.val = zero // let the GC have what v points to once the caller is done
	c.seq.Store(h + q.mask + 1)
	// Release, then look for sleepers (see enqueueSlow).
	if q.producers.n.Load() != 0 {
		q.wakeOne(&q.producers)
	}
	return v
}

// waitDequeues waits, yielding its P, until every dequeue that claimed a
// position before Close closed the head has released its cell (taken its
// item out). Call it after Close. A dequeue holding position p keeps the
// enqueue at p+Cap out of its cell, so p ≥ head-Cap: the cells of the
// Cap positions below head are all it need look at.
func (q *Queue[T]) waitDequeues() {
	h := q.head.Load() &^ closedBit
	for p := h - min(h, q.mask+1); p != h; p++ {
		for c := &q.cells[p&q.mask]; c.seq.Load() == p+1; {
			runtime.Gosched() // claimed and published, not yet released
		}
	}
}

// pollResult says whether poll or dequeueOnce returned an item, and if
// not, why.
type pollResult uint8

const (
	pollOK        pollResult = iota // an item was taken
	pollEmpty                       // no position claimed beyond head: really empty (dequeueOnce: or the head's enqueue in flight)
	pollInFlight                    // the head position is claimed, not yet published
	pollClosed                      // closed: nothing more to dequeue (what is left is Drain's)
	pollContended                   // another consumer claimed the position tried
)

// poll is TryDequeue that also tells an empty queue from one whose head
// enqueue is in flight, and a closed queue.
func (q *Queue[T]) poll() (T, pollResult) {
	h := q.head.Load()
	for {
		if h&closedBit != 0 {
			var zero T
			return zero, pollClosed
		}
		c := &q.cells[h&q.mask]
		seq := c.seq.Load()
		if seq == h+1 {
			if q.head.CompareAndSwap(h, h+1) {
				return q.take(c, h), pollOK
			}
		} else if int64(seq-(h+1)) < 0 {
			// Cell h unpublished when seq was loaded, so head was h then.
			// If tail is still h, no enqueue has claimed h: empty.
			var zero T
			t := q.tail.Load()
			switch {
			case t == h:
				return zero, pollEmpty
			case t == h|closedBit: // empty, and Close is closing head
				return zero, pollClosed
			case q.head.Load() == h:
				return zero, pollInFlight
			}
		}
		h = q.head.Load()
	}
}

// Dequeue removes and returns the item at the head of the queue, waiting
// for one if the queue is empty. It returns ctx.Err() if ctx is done while
// it waits (an item already there is returned even if ctx is done), and
// ErrClosed after Close, even with items left (they are Drain's),
// including to a parked Dequeue, which Close wakes. It does not allocate
// when an item is ready.
//
// An empty consumer polls four times, yielding its P before the last
// poll, then parks: it enrols as a sleeper, checks the queue again, and blocks on a channel of
// its own until an enqueue, Close or ctx wakes it. A parked consumer costs
// no CPU. Each enqueue wakes at most one parked consumer, and only if one
// is parked. Dequeue does not park while the enqueue of the head item is
// in flight: it waits for it, yielding its P, so that the wake-up of an
// item published behind it is not spent on a consumer that goes back to
// sleep. A consumer whose ctx is done passes a wake-up it was given on to
// another.
//
// Consumers park and are woken in FIFO order, but an item goes to
// whichever consumer claims it first: one that has not parked may
// overtake one that was woken, which then parks again. A consumer that
// loses a position to another yields its P before it tries again (see
// errContended).
func (q *Queue[T]) Dequeue(ctx context.Context) (T, error) {
	for {
		v, r := q.dequeueOnce()
		switch r {
		case pollOK:
			return v, nil
		case pollContended:
			runtime.Gosched()
			continue
		case pollClosed:
			return v, ErrClosed
		}
		return q.dequeueSlow(ctx)
	}
}

// dequeueSlow is Dequeue past its first attempt.
//
// Why no wake-up is missed:
//
//  1. enroll, under mu, adds the consumer to the sleepers, then loads head
//     (h) and tail, and parks only if tail = h: no position claimed beyond
//     the head, so no item queued and no enqueue in flight. Otherwise it
//     leaves the sleepers and polls again.
//  2. An enqueue claims (CAS on tail), publishes (store to seq), then
//     loads the sleepers' count, and if that is not zero takes mu and
//     wakes the oldest waiter.
//  3. The atomics are sequentially consistent, so either the claim comes
//     before the consumer's load of tail, which then sees it and does not
//     park, or the enqueue's load of the count comes after the consumer's
//     increment. It then sees a sleeper unless a waker already took the
//     consumer off the list, and mu orders its wake after the consumer
//     joined the list.
//
// So a consumer parks only on a queue with nothing claimed, and from then
// on each enqueue wakes a waiter while any is parked. A woken consumer is
// owed an item; it parks again only through enroll, that is, only once
// every item queued has been taken (a consumer woken for an item published
// behind an in-flight head waits for the head instead). While consumers
// are parked there are thus at least as many woken ones on their way as
// items queued. A woken consumer whose ctx is done before it took an item
// passes its wake-up on (abandon), so a cancellation strands no item
// either.
//
//go:noinline
func (q *Queue[T]) dequeueSlow(ctx context.Context) (T, error) {
	var zero T
	for i := range spinPolls {
		if i == spinPolls-1 {
			runtime.Gosched()
		}
		// TryDequeue reads head and the head cell, the line the next enqueue
		// writes anyway, and not tail, which would pull the producers' line
		// away from them at every poll.
		if v, ok := q.TryDequeue(); ok {
			return v, nil
		}
	}
	woken := false // a wake-up was spent on this call and no item taken yet
	for {
		v, r := q.poll()
		switch r {
		case pollOK:
			return v, nil
		case pollClosed:
			return zero, ErrClosed
		case pollInFlight:
			if err := ctx.Err(); err != nil {
				q.abandon(woken, false)
				return zero, err
			}
			runtime.Gosched() // the producer may be waiting for this P
			continue
		}
		// Empty: whatever this call was woken for has been taken.
		woken = false
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		if q.enrollHook != nil {
			q.enrollHook(false)
		}
		w := q.enroll(&q.consumers, false)
		if w == nil {
			continue // something was claimed, or Close ran: poll again
		}
		var err error
		if woken, err = q.park(ctx, w, &q.consumers, false); err != nil {
			q.abandon(woken, false)
			return zero, err
		}
	}
}

// enroll adds the caller to s, the consumers or the producers, and returns
// its waiter, or returns nil, enrolling nothing, if the queue is already
// ready for it (the caller tries again): for a consumer, a position is
// claimed beyond head (an item, or an enqueue in flight); for a producer,
// fewer than Cap positions are claimed beyond head (a free cell, or a
// dequeue in flight). Either way, not if the queue is closed.
func (q *Queue[T]) enroll(s *sleepers, producer bool) *waiter {
	w := waiterPool.Get().(*waiter)
	q.mu.Lock()
	s.n.Add(1) // announce, then re-check: pairs with publish and take
	h := q.head.Load() &^ closedBit
	t := q.tail.Load() // after h: t ≥ h (Close sets tail's bit before head's)
	ready := t != h    // an item, an enqueue in flight, or closedBit
	if producer {
		ready = t&closedBit != 0 || t-h <= q.mask
	}
	if ready {
		s.n.Add(-1)
		q.mu.Unlock()
		waiterPool.Put(w)
		return nil
	}
	s.waiters.pushBack(w)
	q.mu.Unlock()
	return w
}

// park blocks on w, enrolled in s, until a waker hands it a wake-up
// (woken, nil) or ctx is done (ctx.Err()). If ctx wins the race with a
// waker, the wake-up is taken off w's channel and woken is true: the
// caller passes it on.
func (q *Queue[T]) park(ctx context.Context, w *waiter, s *sleepers, producer bool) (woken bool, err error) {
	if q.parkHook != nil {
		q.parkHook(producer)
	}
	select {
	case <-w.ch:
		waiterPool.Put(w)
		if q.wakeHook != nil {
			q.wakeHook(producer)
		}
		return true, nil
	case <-ctx.Done():
		q.mu.Lock()
		woken = !w.listed
		if woken {
			<-w.ch // a waker took w off the list and sent, under mu
		} else {
			s.waiters.remove(w)
			s.n.Add(-1)
		}
		q.mu.Unlock()
		waiterPool.Put(w)
		return woken, ctx.Err()
	}
}

// abandon passes on the wake-up a leaving consumer (or producer) was
// given, if it was given one and items are still queued (room is left).
func (q *Queue[T]) abandon(woken, producer bool) {
	switch {
	case !woken:
	case producer:
		if q.producers.n.Load() != 0 && q.Len() < q.Cap() {
			q.wakeOne(&q.producers)
		}
	default:
		if q.consumers.n.Load() != 0 && q.Len() != 0 {
			q.wakeOne(&q.consumers)
		}
	}
}

// wakeOne wakes the longest-parked goroutine of s, if any.
//
//go:noinline
func (q *Queue[T]) wakeOne(s *sleepers) {
	q.mu.Lock()
	if w := s.waiters.popFront(); w != nil {
		s.n.Add(-1)
		w.ch <- struct{}{} // never blocks: capacity 1, one send per enrollment
	}
	q.mu.Unlock()
}

// Close closes the queue: from then on TryEnqueue and Enqueue return
// ErrClosed, TryDequeue reports false and Dequeue returns ErrClosed, even
// with items left in the queue: those are for Drain, which hands them
// back (a closing listener resets them, or migrates them). Goroutines
// parked in Dequeue or Enqueue are woken and return ErrClosed. A second
// Close waits for the first to finish, then returns ErrClosed.
//
// Nothing is lost: an enqueue that claimed its position before Close set
// the closed bit returns nil, and Close waits (yielding its P) until it
// has published its item; an enqueue after the bit returns ErrClosed. A
// dequeue that claimed its position before Close closed the other side
// returns its item. So once Close has returned, every enqueue that
// returned nil has its item either returned by a dequeue or in the queue
// for Drain, exactly once. Close takes the lock the parked goroutines
// wait under, and allocates nothing.
func (q *Queue[T]) Close() error {
	end := q.tail.Or(closedBit)
	if end&closedBit != 0 {
		<-q.closeDone // the first Close's guarantees hold when this one returns
		return ErrClosed
	}
	defer close(q.closeDone)
	h := q.head.Or(closedBit) // dequeues stop at h
	// Wait for the enqueues that claimed positions h to end-1 before the
	// closed bit to publish: each cell's seq is p while claimed, p+1 once
	// published, p+Cap once a Drain took it.
	for p := h; p != end; p++ {
		c := &q.cells[p&q.mask]
		for int64(c.seq.Load()-(p+1)) < 0 {
			if q.closeWaitHook != nil {
				q.closeWaitHook()
			}
			runtime.Gosched()
		}
	}
	q.mu.Lock()
	for _, s := range []*sleepers{&q.consumers, &q.producers} {
		for w := s.waiters.popFront(); w != nil; w = s.waiters.popFront() {
			s.n.Add(-1)
			w.ch <- struct{}{}
		}
	}
	q.mu.Unlock()
	return nil
}

// Drain removes and returns the items in the queue, oldest first (nil if
// none). After Close has returned, that is every item left; before, it
// stops where TryDequeue would report false (an enqueue of the head
// position in flight), and the queue stays open. Drains and dequeues
// running at the same time share the items, each taken once. Drain is
// lock-free (it takes a lock only to wake a parked producer) and
// allocates the slice it returns.
func (q *Queue[T]) Drain() []T {
	var out []T
	for {
		h := q.head.Load()
		p := h &^ closedBit
		c := &q.cells[p&q.mask]
		seq := c.seq.Load()
		switch {
		case seq == p+1:
			if q.head.CompareAndSwap(h, h+1) { // h+1 keeps the closed bit
				if out == nil {
					out = make([]T, 0, q.Len()+1)
				}
				out = append(out, q.take(c, p))
			}
		case int64(seq-(p+1)) < 0:
			return out // unpublished: empty, or (before Close) its enqueue is in flight
		}
		// Otherwise another Drain or dequeue claimed p: look again.
	}
}

// waiter is a parked goroutine: a channel it blocks on, linked into a
// waiter list. Waiters are reused through waiterPool; one is put back only
// when it is off its list and its channel is empty.
type waiter struct {
	ch         chan struct{} // capacity 1: the wake-up
	prev, next *waiter       // guarded by Queue.mu
	listed     bool          // in a waiter list; guarded by Queue.mu
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// waiterList is a doubly linked FIFO of waiters, so that a goroutine whose
// ctx is done can leave from the middle in O(1).
type waiterList struct {
	first, last *waiter
}

func (l *waiterList) pushBack(w *waiter) {
	w.prev, w.next, w.listed = l.last, nil, true
	if l.last != nil {
		l.last.next = w
	} else {
		l.first = w
	}
	l.last = w
}

func (l *waiterList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.first = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.last = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
}

func (l *waiterList) popFront() *waiter {
	w := l.first
	if w != nil {
		l.remove(w)
	}
	return w
}
