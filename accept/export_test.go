package accept

import "unsafe"

// Hooks are test hooks into a Queue's slow paths; nil fields do nothing.
// The producer argument tells an Enqueue (true) from a Dequeue.
type Hooks struct {
	// Enroll runs when a Dequeue has found the queue empty, or an Enqueue
	// full, and is about to enrol as a sleeper.
	Enroll func(producer bool)
	// Park runs when it has enrolled and is about to block.
	Park func(producer bool)
	// Wake runs each time a parked Dequeue or Enqueue is woken (by the
	// other side or Close; not by its ctx).
	Wake func(producer bool)
	// CloseWait runs each time Close waits for an enqueue that claimed a
	// position and has not published.
	CloseWait func()
}

// SetHooks installs h. Call before the queue is shared.
func (q *Queue[T]) SetHooks(h Hooks) {
	q.enrollHook, q.parkHook, q.wakeHook, q.closeWaitHook = h.Enroll, h.Park, h.Wake, h.CloseWait
}

// Sleepers returns the number of consumers enrolled to park.
func (q *Queue[T]) Sleepers() int { return int(q.consumers.n.Load()) }

// ProducerSleepers returns the number of producers enrolled to park.
func (q *Queue[T]) ProducerSleepers() int { return int(q.producers.n.Load()) }

// Claim does the first half of TryEnqueue, as TryEnqueue does it: it
// claims the tail position and returns the function that does the second
// half, publishing v there (and waking a parked consumer), or returns
// TryEnqueue's error. Between the two, the queue is as it is while a
// producer is preempted between its CAS and its publish.
func (q *Queue[T]) Claim() (publish func(v T), err error) {
	t := q.tail.Load()
	for {
		if t&closedBit != 0 {
			return nil, ErrClosed
		}
		c := &q.cells[t&q.mask]
		seq := c.seq.Load()
		if seq == t {
			if q.tail.CompareAndSwap(t, t+1) {
				return func(v T) {
					c.val = v
					c.seq.Store(t + 1)
					if q.consumers.n.Load() != 0 {
						q.wakeOne(&q.consumers)
					}
				}, nil
			}
		} else if int64(seq-t) < 0 {
			return nil, ErrQueueFull
		}
		t = q.tail.Load()
	}
}

// ClaimHead does the first half of TryDequeue, as TryDequeue does it: it
// claims the head item and returns the function that takes it out and
// releases its cell (waking a parked producer), or reports false as
// TryDequeue would. Between the two, the queue is as it is while a
// consumer is preempted between its CAS and its release.
func (q *Queue[T]) ClaimHead() (take func() T, ok bool) {
	h := q.head.Load()
	for {
		if h&closedBit != 0 {
			return nil, false
		}
		c := &q.cells[h&q.mask]
		seq := c.seq.Load()
		if seq == h+1 {
			if q.head.CompareAndSwap(h, h+1) {
				return func() T { return q.take(c, h) }, true
			}
		} else if int64(seq-(h+1)) < 0 {
			return nil, false
		}
		h = q.head.Load()
	}
}

// Layout returns the offsets of the tail, head and sleepers words in a
// Queue, and the size of a cell holding a pointer, for the false-sharing
// test.
func Layout() (tail, head, sleepers, cell uintptr) {
	var q Queue[*int]
	return unsafe.Offsetof(q.tail), unsafe.Offsetof(q.head), unsafe.Offsetof(q.consumers), unsafe.Sizeof(q.cells[0])
}

// CacheLinePad is the distance the hot words of a Queue keep apart.
const CacheLinePad = cacheLinePad

// SetBacklogBatch sets how many credits a shard draws from, or returns
// to, the pool at a time (see backlog), so that small backlogs can run
// with batches above one. Call before the listener is shared.
func (s *Sharded[T]) SetBacklogBatch(n int64) { s.backlog.batch = n }
