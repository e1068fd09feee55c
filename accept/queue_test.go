package accept_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/internal/errs"
)

func newQueue(t *testing.T, capacity int) *accept.Queue[int] {
	t.Helper()
	q, err := accept.NewQueue[int](capacity)
	require.NoError(t, err)
	return q
}

// within receives from ch, failing the test if nothing comes within 10 s:
// a lost wake-up shows as a failure rather than a hung test. A passing
// test never waits for the timer.
func within[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitAll waits for wg like within: a hang fails the test.
func waitAll(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	within(t, done, what)
}

type result struct {
	v   int
	err error
}

// consume runs Dequeue on its own goroutine and returns where its result
// will arrive.
func consume(ctx context.Context, q *accept.Queue[int]) <-chan result {
	out := make(chan result, 1)
	go func() {
		v, err := q.Dequeue(ctx)
		out <- result{v, err}
	}()
	return out
}

// produce runs Enqueue on its own goroutine and returns where its result
// will arrive.
func produce(ctx context.Context, q *accept.Queue[int], v int) <-chan error {
	out := make(chan error, 1)
	go func() { out <- q.Enqueue(ctx, v) }()
	return out
}

// hooks counts one side's parks and wake-ups (consumers', or producers')
// and announces each park on a channel; others counts the other side's.
// Each park waits for the test to close the gate it announced (when gated)
// before blocking, so that a test can arrange what happens before the
// goroutine reaches its select.
type hooks struct {
	parks, wakes, others atomic.Int32
	parked               chan chan struct{}
	woken                chan struct{}
}

func install(q *accept.Queue[int], gated, producer bool) *hooks {
	h := &hooks{parked: make(chan chan struct{}, 16), woken: make(chan struct{}, 16)}
	q.SetHooks(accept.Hooks{Park: func(p bool) {
		if p != producer {
			h.others.Add(1)
			return
		}
		h.parks.Add(1)
		gate := make(chan struct{})
		if gated {
			h.parked <- gate
			<-gate
			return
		}
		select { // a test that does not wait for this park may drop it
		case h.parked <- gate:
		default:
		}
	}, Wake: func(p bool) {
		if p != producer {
			h.others.Add(1)
			return
		}
		h.wakes.Add(1)
		select {
		case h.woken <- struct{}{}:
		default:
		}
	}})
	return h
}

func TestNewQueueCapacity(t *testing.T) {
	for _, c := range []int{0, -1, accept.MaxCapacity + 1, int(^uint(0) >> 1)} {
		_, err := accept.NewQueue[int](c)
		require.ErrorIs(t, err, accept.ErrCapacity, "capacity %d", c)
	}
	for c, want := range map[int]int{1: 2, 2: 2, 3: 4, 1000: 1024, 1024: 1024, 1025: 2048} {
		q := newQueue(t, c)
		require.Equal(t, want, q.Cap(), "capacity %d", c)
		require.Zero(t, q.Len())
	}
}

// The producers' and consumers' counters and the sleepers words sit on
// lines of their own, and a cell of pointers fills a line.
func TestQueueLayout(t *testing.T) {
	tail, head, sleepers, cell := accept.Layout()
	require.GreaterOrEqual(t, tail, uintptr(accept.CacheLinePad), "tail shares a line with the cells' header")
	require.GreaterOrEqual(t, head-tail, uintptr(accept.CacheLinePad))
	require.GreaterOrEqual(t, sleepers-head, uintptr(accept.CacheLinePad))
	require.Equal(t, uintptr(64), cell, "a cell of pointers is one cache line")
}

func TestQueueFIFOAndFull(t *testing.T) {
	q := newQueue(t, 3) // rounds to 4
	for i := range 4 {
		require.NoError(t, q.TryEnqueue(i))
		require.Equal(t, i+1, q.Len())
	}
	err := q.TryEnqueue(99)
	require.ErrorIs(t, err, accept.ErrQueueFull)
	require.NotErrorIs(t, err, accept.ErrClosed)
	for i := range 4 {
		v, ok := q.TryDequeue()
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	_, ok := q.TryDequeue()
	require.False(t, ok)
	require.Zero(t, q.Len())
}

// Positions wrap around the ring many times at every fill level.
func TestQueueWrapAround(t *testing.T) {
	for _, capacity := range []int{2, 4, 8} {
		q := newQueue(t, capacity)
		next, want := 0, 0
		for round := range 2000 {
			fill := round % (capacity + 1)
			for range fill {
				require.NoError(t, q.TryEnqueue(next))
				next++
			}
			if fill == capacity {
				require.ErrorIs(t, q.TryEnqueue(-1), accept.ErrQueueFull)
			}
			require.Equal(t, fill, q.Len())
			for range fill {
				v, ok := q.TryDequeue()
				require.True(t, ok)
				require.Equal(t, want, v)
				want++
			}
			_, ok := q.TryDequeue()
			require.False(t, ok)
		}
	}
}

func TestQueueClose(t *testing.T) {
	q := newQueue(t, 4)
	for i := range 4 {
		require.NoError(t, q.TryEnqueue(i))
	}
	v, ok := q.TryDequeue()
	require.True(t, ok)
	require.Zero(t, v)
	require.NoError(t, q.TryEnqueue(4)) // full again, wrapped
	require.NoError(t, q.Close())
	require.Equal(t, 4, q.Len(), "the items stay for Drain")
	require.ErrorIs(t, q.TryEnqueue(5), accept.ErrClosed)
	_, ok = q.TryDequeue()
	require.False(t, ok, "nothing is dequeued after Close")
	_, err := q.Dequeue(context.Background())
	require.ErrorIs(t, err, accept.ErrClosed, "even with items left")
	require.Equal(t, []int{1, 2, 3, 4}, q.Drain(), "Drain returns what is queued, oldest first")
	require.Zero(t, q.Len())
	require.Nil(t, q.Drain())
	require.ErrorIs(t, q.Close(), accept.ErrClosed, "second Close")

	empty := newQueue(t, 4)
	require.NoError(t, empty.Close())
	require.Nil(t, empty.Drain())
	require.ErrorIs(t, empty.TryEnqueue(1), accept.ErrClosed)
}

// Drain on an open queue takes what is there, oldest first, stops at a
// head whose enqueue is in flight, and leaves the queue open.
func TestQueueDrainOpen(t *testing.T) {
	q := newQueue(t, 4)
	require.Nil(t, q.Drain())
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	require.Equal(t, []int{1, 2}, q.Drain())
	publish, err := q.Claim()
	require.NoError(t, err)
	require.NoError(t, q.TryEnqueue(4))
	require.Nil(t, q.Drain(), "the head's enqueue is in flight")
	publish(3)
	require.NoError(t, q.TryEnqueue(5))
	require.Equal(t, []int{3, 4, 5}, q.Drain())
	require.NoError(t, q.TryEnqueue(6), "still open")
	v, ok := q.TryDequeue()
	require.True(t, ok)
	require.Equal(t, 6, v)
}

// closeAndDrain closes q and returns what Drain hands back.
func closeAndDrain(t *testing.T, q *accept.Queue[int]) []int {
	t.Helper()
	require.NoError(t, q.Close())
	return q.Drain()
}

// A full, closed queue reports ErrClosed, not ErrQueueFull.
func TestQueueClosedBeatsFull(t *testing.T) {
	q := newQueue(t, 2)
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	require.ErrorIs(t, q.TryEnqueue(3), accept.ErrQueueFull)
	require.Equal(t, []int{1, 2}, closeAndDrain(t, q))
	require.ErrorIs(t, q.TryEnqueue(3), accept.ErrClosed)
}

func TestDequeueReadyAndCancelled(t *testing.T) {
	q := newQueue(t, 4)
	require.NoError(t, q.TryEnqueue(7))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v, err := q.Dequeue(ctx)
	require.NoError(t, err, "an item already there is returned even if ctx is done")
	require.Equal(t, 7, v)
	_, err = q.Dequeue(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, q.Sleepers())

	deadline, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	_, err = q.Dequeue(deadline)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// An item that arrives after a consumer found the queue empty and before
// it enrolled is seen by enroll's re-check: the consumer takes it instead
// of parking (the enqueue saw no sleeper, so it woke no one).
func TestDequeueItemArrivesBeforeEnroll(t *testing.T) {
	q := newQueue(t, 4)
	var parks, enrolls atomic.Int32
	q.SetHooks(accept.Hooks{
		Enroll: func(bool) {
			if enrolls.Add(1) == 1 {
				assert.Zero(t, q.Sleepers())
				assert.NoError(t, q.TryEnqueue(5))
			}
		},
		Park: func(bool) { parks.Add(1) },
	})
	r := within(t, consume(context.Background(), q), "the consumer")
	require.NoError(t, r.err)
	require.Equal(t, 5, r.v)
	require.Zero(t, parks.Load(), "the consumer parked with an item queued")
	require.Equal(t, int32(1), enrolls.Load())

	// The same with the item's enqueue claimed before enroll and published
	// only after the consumer has found its head in flight.
	var publish func(int)
	q.SetHooks(accept.Hooks{
		Enroll: func(bool) {
			if enrolls.Add(1) == 2 {
				var err error
				publish, err = q.Claim()
				if !assert.NoError(t, err) {
					return
				}
				go func() { // publishes while the consumer waits for it
					runtime.Gosched()
					publish(6)
				}()
			}
		},
		Park: func(bool) { parks.Add(1) },
	})
	r = within(t, consume(context.Background(), q), "the consumer")
	require.NoError(t, r.err)
	require.Equal(t, 6, r.v)
	require.Zero(t, parks.Load(), "the consumer parked with an enqueue in flight")
}

// A parked consumer whose ctx is cancelled leaves the waiters: it returns
// ctx.Err(), and the next enqueue wakes no one.
func TestDequeueCancelWhileParked(t *testing.T) {
	q := newQueue(t, 4)
	h := install(q, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	res := consume(ctx, q)
	within(t, h.parked, "the consumer to park")
	require.Equal(t, 1, q.Sleepers())
	cancel()
	r := within(t, res, "the cancelled consumer")
	require.ErrorIs(t, r.err, context.Canceled)
	require.Zero(t, q.Sleepers())
	require.NoError(t, q.TryEnqueue(1))
	require.Zero(t, h.wakes.Load(), "a cancelled consumer is not woken")
	v, ok := q.TryDequeue()
	require.True(t, ok, "the item is still there")
	require.Equal(t, 1, v)
}

// An idle parked consumer is never woken; each enqueue to a parked
// consumer wakes it exactly once.
func TestDequeueWakeups(t *testing.T) {
	q := newQueue(t, 4)
	h := install(q, false, false)
	res := consume(context.Background(), q)
	within(t, h.parked, "the consumer to park")
	require.Equal(t, 1, q.Sleepers())

	// Everything but an enqueue or a Close: none of it may wake the
	// consumer.
	for range 1000 {
		_, ok := q.TryDequeue()
		require.False(t, ok)
		require.Zero(t, q.Len())
	}
	other := newQueue(t, 4)
	require.NoError(t, other.TryEnqueue(1))
	other.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := q.Dequeue(ctx) // a second consumer comes and goes
	require.ErrorIs(t, err, context.Canceled)

	require.Zero(t, h.wakes.Load(), "an idle consumer was woken")
	require.Equal(t, int32(1), h.parks.Load())
	require.Equal(t, 1, q.Sleepers())
	select {
	case r := <-res:
		t.Fatalf("the consumer returned %v without an enqueue", r)
	default:
	}

	require.NoError(t, q.TryEnqueue(42))
	r := within(t, res, "the woken consumer")
	require.NoError(t, r.err)
	require.Equal(t, 42, r.v)
	require.Equal(t, int32(1), h.wakes.Load())
	require.Zero(t, q.Sleepers())

	// Rounds of park, enqueue, wake: exactly one wake-up per enqueue.
	const rounds = 50
	for i := range rounds {
		res := consume(context.Background(), q)
		within(t, h.parked, "the consumer to park")
		require.NoError(t, q.TryEnqueue(i))
		r := within(t, res, "the woken consumer")
		require.NoError(t, r.err)
		require.Equal(t, i, r.v)
	}
	require.Equal(t, int32(1+rounds), h.wakes.Load())

	// A burst to one consumer: at most one wake-up per enqueue.
	done := make(chan []int)
	go func() {
		var got []int
		for range 200 {
			v, err := q.Dequeue(context.Background())
			if err != nil {
				break
			}
			got = append(got, v)
		}
		done <- got
	}()
	for i := 0; i < 200; {
		if q.TryEnqueue(i) == nil {
			i++
		} else {
			runtime.Gosched() // full: let the consumer drain it
		}
	}
	got := within(t, done, "the burst")
	require.Len(t, got, 200)
	for i, v := range got {
		require.Equal(t, i, v)
	}
	require.LessOrEqual(t, h.wakes.Load(), int32(1+rounds+200))
}

// Close wakes every parked consumer, and they return ErrClosed.
func TestCloseWakesConsumers(t *testing.T) {
	q := newQueue(t, 4)
	h := install(q, false, false)
	const n = 5
	var results []<-chan result
	for range n {
		results = append(results, consume(context.Background(), q))
		within(t, h.parked, "a consumer to park")
	}
	require.Equal(t, n, q.Sleepers())
	require.NoError(t, q.Close())
	for _, res := range results {
		r := within(t, res, "a consumer woken by Close")
		require.ErrorIs(t, r.err, accept.ErrClosed)
	}
	require.Equal(t, int32(n), h.wakes.Load())
	require.Zero(t, q.Sleepers())
}

// The Vyukov property: while the enqueue that claimed the head position
// has not published, TryDequeue reports empty even though a later enqueue
// has completed; Len counts both.
func TestTryDequeueEmptyWhileHeadInFlight(t *testing.T) {
	q := newQueue(t, 4)
	publish, err := q.Claim()
	require.NoError(t, err)
	require.NoError(t, q.TryEnqueue(2))
	require.Equal(t, 2, q.Len())
	_, ok := q.TryDequeue()
	require.False(t, ok)
	publish(1)
	for want := 1; want <= 2; want++ {
		v, ok := q.TryDequeue()
		require.True(t, ok)
		require.Equal(t, want, v)
	}
}

// A consumer woken for an item published behind an in-flight head waits
// for the head instead of parking again, so the wake-up owed to the second
// item is not lost: two parked consumers, two items, both served.
func TestDequeueWaitsForInFlightHead(t *testing.T) {
	q := newQueue(t, 4)
	h := install(q, false, false)
	r1 := consume(context.Background(), q)
	within(t, h.parked, "consumer 1 to park")
	r2 := consume(context.Background(), q)
	within(t, h.parked, "consumer 2 to park")
	require.Equal(t, 2, q.Sleepers())

	publish, err := q.Claim()
	require.NoError(t, err)
	require.NoError(t, q.TryEnqueue(2)) // wakes consumer 1, which finds the head in flight
	within(t, h.woken, "consumer 1 to be woken")
	assert.Equal(t, 1, q.Sleepers(), "consumer 1 enrolled again")
	publish(1) // wakes consumer 2
	got := map[int]bool{}
	for _, res := range []<-chan result{r1, r2} {
		r := within(t, res, "a consumer")
		require.NoError(t, r.err)
		got[r.v] = true
	}
	require.Equal(t, map[int]bool{1: true, 2: true}, got)
	require.Equal(t, int32(2), h.parks.Load(), "a consumer parked again")
	require.Equal(t, int32(2), h.wakes.Load())
	require.Zero(t, q.Sleepers())
}

// A consumer that is handed a wake-up and sees its ctx done at the same
// moment returns ctx.Err() and passes the wake-up on: the item goes to
// the other parked consumer instead of waiting for the next enqueue.
// The consumer's select picks between the two ready cases at random, so
// the scenario is replayed until the cancelled case has been taken.
func TestDequeueCancelPassesWakeupOn(t *testing.T) {
	cancelledSeen := 0
	for try := 0; try < 200 && cancelledSeen < 3; try++ {
		q := newQueue(t, 4)
		h := install(q, true, false)
		ctx1, cancel1 := context.WithCancel(context.Background())
		r1 := consume(ctx1, q)
		gate1 := within(t, h.parked, "consumer 1 to park")
		r2 := consume(context.Background(), q)
		close(within(t, h.parked, "consumer 2 to park"))
		require.Equal(t, 2, q.Sleepers())

		// Consumer 1 is enrolled first and is held before its select: cancel
		// its ctx and wake it, then let it choose.
		cancel1()
		require.NoError(t, q.TryEnqueue(try))
		require.Equal(t, 1, q.Sleepers(), "the enqueue woke one consumer")
		close(gate1)
		a := within(t, r1, "consumer 1")
		if a.err == nil {
			require.Equal(t, try, a.v) // it took the wake-up: consumer 2 is still parked
			q.Close()
			require.ErrorIs(t, within(t, r2, "consumer 2 after Close").err, accept.ErrClosed)
			continue
		}
		cancelledSeen++
		require.ErrorIs(t, a.err, context.Canceled)
		b := within(t, r2, "consumer 2, woken by the passed-on wake-up")
		require.NoError(t, b.err)
		require.Equal(t, try, b.v)
		require.Zero(t, q.Sleepers())
	}
	require.Equal(t, 3, cancelledSeen, "the cancelled case of the select was never taken")
}

// Enqueue on a full queue parks; a dequeue that frees a cell wakes it,
// once. Nothing else wakes it.
func TestEnqueueWaitsForRoom(t *testing.T) {
	q := newQueue(t, 2)
	h := install(q, false, true)
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	res := produce(context.Background(), q, 3)
	within(t, h.parked, "the producer to park")
	require.Equal(t, 1, q.ProducerSleepers())

	// Everything but a dequeue or a Close: none of it may wake the
	// producer.
	for range 1000 {
		require.ErrorIs(t, q.TryEnqueue(9), accept.ErrQueueFull)
		require.Equal(t, 2, q.Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, q.Enqueue(ctx, 9), context.Canceled, "a second producer comes and goes")
	require.Zero(t, h.wakes.Load(), "an idle producer was woken")
	require.Equal(t, int32(1), h.parks.Load())
	select {
	case err := <-res:
		t.Fatalf("the producer returned %v without a dequeue", err)
	default:
	}

	v, ok := q.TryDequeue()
	require.True(t, ok)
	require.Equal(t, 1, v)
	require.NoError(t, within(t, res, "the woken producer"))
	require.Equal(t, int32(1), h.wakes.Load())
	require.Zero(t, q.ProducerSleepers())

	// Rounds of park, dequeue, wake: exactly one wake-up per dequeue, and
	// FIFO order kept.
	const rounds = 50
	for i := range rounds {
		res := produce(context.Background(), q, 4+i)
		within(t, h.parked, "the producer to park")
		v, ok := q.TryDequeue()
		require.True(t, ok)
		require.Equal(t, 2+i, v)
		require.NoError(t, within(t, res, "the woken producer"))
	}
	require.Equal(t, int32(1+rounds), h.wakes.Load())
	require.Equal(t, []int{2 + rounds, 3 + rounds}, closeAndDrain(t, q))
	require.Zero(t, h.others.Load(), "a consumer parked or was woken")
}

func TestEnqueueReadyAndCancelled(t *testing.T) {
	q := newQueue(t, 2)
	h := install(q, false, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, q.Enqueue(ctx, 1), "with room, v is enqueued even if ctx is done")
	require.NoError(t, q.Enqueue(ctx, 2))
	require.ErrorIs(t, q.Enqueue(ctx, 3), context.Canceled)
	require.Zero(t, h.parks.Load())
	require.Zero(t, q.ProducerSleepers())
	require.Equal(t, []int{1, 2}, closeAndDrain(t, q))
	require.ErrorIs(t, q.Enqueue(context.Background(), 4), accept.ErrClosed)
}

// A parked producer whose ctx is cancelled leaves the waiters without
// enqueueing, and the next dequeue wakes no one.
func TestEnqueueCancelWhileParked(t *testing.T) {
	q := newQueue(t, 2)
	h := install(q, false, true)
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	ctx, cancel := context.WithCancel(context.Background())
	res := produce(ctx, q, 3)
	within(t, h.parked, "the producer to park")
	cancel()
	require.ErrorIs(t, within(t, res, "the cancelled producer"), context.Canceled)
	require.Zero(t, q.ProducerSleepers())
	v, ok := q.TryDequeue()
	require.True(t, ok)
	require.Equal(t, 1, v)
	require.Zero(t, h.wakes.Load(), "a cancelled producer is not woken")
	require.Equal(t, []int{2}, closeAndDrain(t, q), "the cancelled value was not enqueued")
}

// Close wakes every parked producer, and they return ErrClosed.
func TestCloseWakesProducers(t *testing.T) {
	q := newQueue(t, 2)
	h := install(q, false, true)
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	const n = 5
	var results []<-chan error
	for i := range n {
		results = append(results, produce(context.Background(), q, 10+i))
		within(t, h.parked, "a producer to park")
	}
	require.Equal(t, n, q.ProducerSleepers())
	require.Equal(t, []int{1, 2}, closeAndDrain(t, q))
	for _, res := range results {
		require.ErrorIs(t, within(t, res, "a producer woken by Close"), accept.ErrClosed)
	}
	require.Equal(t, int32(n), h.wakes.Load())
	require.Zero(t, q.ProducerSleepers())
}

// A producer woken for a cell freed behind an in-flight dequeue of the
// oldest cell waits for that release instead of parking again, so the
// wake-up owed to the second free cell is not lost: two parked producers,
// two cells freed, both served.
func TestEnqueueWaitsForInFlightRelease(t *testing.T) {
	q := newQueue(t, 4)
	h := install(q, false, true)
	for i := 1; i <= 4; i++ {
		require.NoError(t, q.TryEnqueue(i))
	}
	r1 := produce(context.Background(), q, 5)
	within(t, h.parked, "producer 1 to park")
	r2 := produce(context.Background(), q, 6)
	within(t, h.parked, "producer 2 to park")
	require.Equal(t, 2, q.ProducerSleepers())

	take, ok := q.ClaimHead() // the dequeue of 1, in flight
	require.True(t, ok)
	v, ok := q.TryDequeue() // frees the cell of 2: wakes producer 1, which finds cell of 1 held
	require.True(t, ok)
	require.Equal(t, 2, v)
	within(t, h.woken, "producer 1 to be woken")
	assert.Equal(t, 1, q.ProducerSleepers(), "producer 1 enrolled again")
	require.Equal(t, 1, take()) // wakes producer 2
	require.NoError(t, within(t, r1, "producer 1"))
	require.NoError(t, within(t, r2, "producer 2"))
	got := closeAndDrain(t, q)
	require.Len(t, got, 4)
	require.Equal(t, []int{3, 4}, got[:2])
	require.ElementsMatch(t, []int{5, 6}, got[2:])
	require.Equal(t, int32(2), h.parks.Load(), "a producer parked again")
	require.Equal(t, int32(2), h.wakes.Load())
}

// Room that appears after a producer found the queue full and before it
// enrolled is seen by enroll's re-check: the producer does not park.
func TestEnqueueRoomArrivesBeforeEnroll(t *testing.T) {
	q := newQueue(t, 2)
	require.NoError(t, q.TryEnqueue(1))
	require.NoError(t, q.TryEnqueue(2))
	var parks, enrolls atomic.Int32
	q.SetHooks(accept.Hooks{
		Enroll: func(producer bool) {
			if producer && enrolls.Add(1) == 1 {
				v, ok := q.TryDequeue()
				assert.True(t, ok)
				assert.Equal(t, 1, v)
			}
		},
		Park: func(bool) { parks.Add(1) },
	})
	require.NoError(t, within(t, produce(context.Background(), q, 3), "the producer"))
	require.Zero(t, parks.Load(), "the producer parked with a free cell")
	require.Equal(t, []int{2, 3}, closeAndDrain(t, q))
}

// A producer that is handed a wake-up and sees its ctx done at the same
// moment returns ctx.Err() and passes the wake-up on to the other parked
// producer (see TestDequeueCancelPassesWakeupOn).
func TestEnqueueCancelPassesWakeupOn(t *testing.T) {
	cancelledSeen := 0
	for try := 0; try < 200 && cancelledSeen < 3; try++ {
		q := newQueue(t, 2)
		h := install(q, true, true)
		require.NoError(t, q.TryEnqueue(1))
		require.NoError(t, q.TryEnqueue(2))
		ctx1, cancel1 := context.WithCancel(context.Background())
		r1 := produce(ctx1, q, 3)
		gate1 := within(t, h.parked, "producer 1 to park")
		r2 := produce(context.Background(), q, 4)
		close(within(t, h.parked, "producer 2 to park"))
		require.Equal(t, 2, q.ProducerSleepers())

		cancel1()
		v, ok := q.TryDequeue() // wakes producer 1
		require.True(t, ok)
		require.Equal(t, 1, v)
		require.Equal(t, 1, q.ProducerSleepers(), "the dequeue woke one producer")
		close(gate1)
		err := within(t, r1, "producer 1")
		if err == nil {
			require.Equal(t, []int{2, 3}, closeAndDrain(t, q)) // it took the wake-up: producer 2 is still parked
			require.ErrorIs(t, within(t, r2, "producer 2 after Close"), accept.ErrClosed)
			continue
		}
		require.ErrorIs(t, err, context.Canceled)
		cancelledSeen++
		require.NoError(t, within(t, r2, "producer 2, woken by the passed-on wake-up"))
		require.Equal(t, []int{2, 4}, closeAndDrain(t, q))
		require.Zero(t, q.ProducerSleepers())
	}
	require.Equal(t, 3, cancelledSeen, "the cancelled case of the select was never taken")
}

// signalCloseWait returns a channel that receives when q's Close first
// waits for an enqueue in flight.
func signalCloseWait(q *accept.Queue[int]) <-chan struct{} {
	waiting := make(chan struct{}, 1)
	q.SetHooks(accept.Hooks{CloseWait: func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}})
	return waiting
}

// Close waits for an enqueue that claimed its position before Close and
// returns its item; an enqueue after Close fails.
func TestCloseWaitsForInFlightEnqueue(t *testing.T) {
	q := newQueue(t, 4)
	require.NoError(t, q.TryEnqueue(1))
	publish, err := q.Claim()
	require.NoError(t, err)
	waiting := signalCloseWait(q)
	closed := make(chan error, 1)
	go func() { closed <- q.Close() }()
	within(t, waiting, "Close to wait for the in-flight enqueue")
	require.ErrorIs(t, q.TryEnqueue(3), accept.ErrClosed)
	_, err = q.Claim()
	require.ErrorIs(t, err, accept.ErrClosed)
	_, ok := q.TryDequeue()
	require.False(t, ok, "closed to dequeues while Close waits")
	publish(2)
	require.NoError(t, within(t, closed, "Close"))
	require.Equal(t, []int{1, 2}, q.Drain())
}

// A second Close returns only once the first has finished waiting for the
// enqueue in flight, so a Drain after it finds that enqueue's item. (It
// used to return ErrClosed at once, and a Drain then could miss the item.)
func TestSecondCloseWaitsForTheFirst(t *testing.T) {
	q := newQueue(t, 4)
	publish, err := q.Claim()
	require.NoError(t, err)
	waiting := signalCloseWait(q)
	first := make(chan error, 1)
	go func() { first <- q.Close() }()
	within(t, waiting, "the first Close to wait for the in-flight enqueue")
	second := make(chan []int, 1)
	go func() {
		if err := q.Close(); !errors.Is(err, accept.ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
		second <- q.Drain()
	}()
	for range 100 { // give the second Close every chance to return early
		runtime.Gosched()
	}
	select {
	case d := <-second:
		t.Fatalf("the second Close returned (Drain %v) while the first waited", d)
	default:
	}
	publish(5)
	require.NoError(t, within(t, first, "the first Close"))
	require.Equal(t, []int{5}, within(t, second, "the second Close and its Drain"))
}

// The sentinels are socktable's, so errors.Is matches either name.
func TestErrorsAreSocktables(t *testing.T) {
	require.Equal(t, socktable.ErrClosed, accept.ErrClosed)
	require.Equal(t, socktable.ErrCapacity, accept.ErrCapacity)
	require.Equal(t, errs.ErrQueueFull, accept.ErrQueueFull)
	require.Equal(t, socktable.ErrBacklog, accept.ErrBacklog)
	require.ErrorIs(t, fmt.Errorf("accept: %w", accept.ErrQueueFull), errs.ErrQueueFull)
	require.NotErrorIs(t, accept.ErrEmpty, accept.ErrClosed)
	require.True(t, strings.HasPrefix(accept.ErrEmpty.Error(), "socktable: "))
}
