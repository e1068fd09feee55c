package accept_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/internal/porctest"
)

// Producers enqueue unique values into a small queue with TryEnqueue,
// Enqueue, and Enqueue on contexts cancelled at random moments, while
// consumers take them with TryDequeue, Dequeue, and Dequeue on contexts
// cancelled at random moments, and Close runs in the middle: every value
// whose enqueue returned nil is returned exactly once, by a dequeue or by
// the Drain after Close, and no other value is returned.
func TestQueueConcurrentExactlyOnce(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for _, closeEarly := range []bool{false, true} {
			t.Run(fmt.Sprintf("closeEarly=%v", closeEarly), func(t *testing.T) { hammerQueue(t, closeEarly) })
		}
	})
}

// cancelSoon returns a context that a goroutine cancels after a few
// yields chosen by x, or never.
func cancelSoon(x uint64) context.Context {
	if x>>8%4 == 0 {
		return context.Background()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range x % 8 {
			runtime.Gosched()
		}
		cancel()
	}()
	return ctx
}

func hammerQueue(t *testing.T, closeEarly bool) {
	const producers, perProducer = 3, 4000
	const tryConsumers, blockingConsumers, cancellingConsumers = 1, 2, 1
	q, err := accept.NewQueue[int](32)
	require.NoError(t, err)
	accepted := make([]atomic.Int32, producers*perProducer)
	returned := make([]atomic.Int32, producers*perProducer)
	var enqueued atomic.Int64
	closeAt := int64(producers * perProducer * 3 / 4)
	if closeEarly {
		closeAt = producers * perProducer / 10
	}

	// Producer 0 uses TryEnqueue and yields when full, producer 1 Enqueue,
	// producer 2 Enqueue on contexts cancelled at random moments (a
	// cancelled value is tried again).
	var producing sync.WaitGroup
	var pcancelled atomic.Int64
	for p := range producers {
		producing.Add(1)
		go func() {
			defer producing.Done()
			r := porctest.NewRand(uint64(p + 7))
			for i := range perProducer {
				v := p*perProducer + i
				for {
					var err error
					switch p % 3 {
					case 0:
						err = q.TryEnqueue(v)
					case 1:
						err = q.Enqueue(context.Background(), v)
					case 2:
						err = q.Enqueue(cancelSoon(r.Next()), v)
					}
					if err == nil {
						accepted[v].Add(1)
						enqueued.Add(1)
						break
					}
					switch {
					case errors.Is(err, accept.ErrClosed):
						return
					case errors.Is(err, context.Canceled):
						pcancelled.Add(1)
					case !assert.ErrorIs(t, err, accept.ErrQueueFull):
						return
					}
					runtime.Gosched()
				}
			}
		}()
	}

	var closed atomic.Bool // set after Close returned
	var consuming sync.WaitGroup
	take := func(v int) { returned[v].Add(1) }
	for range tryConsumers {
		consuming.Add(1)
		go func() {
			defer consuming.Done()
			for {
				if v, ok := q.TryDequeue(); ok {
					take(v)
					continue
				}
				if closed.Load() {
					if _, ok := q.TryDequeue(); !assert.False(t, ok, "an item after Close returned") {
						return
					}
					return
				}
				runtime.Gosched()
			}
		}()
	}
	for range blockingConsumers {
		consuming.Add(1)
		go func() {
			defer consuming.Done()
			for {
				v, err := q.Dequeue(context.Background())
				if errors.Is(err, accept.ErrClosed) {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				take(v)
			}
		}()
	}
	var cancelled atomic.Int64
	for c := range cancellingConsumers {
		consuming.Add(1)
		go func() {
			defer consuming.Done()
			r := porctest.NewRand(uint64(c + 1))
			for {
				v, err := q.Dequeue(cancelSoon(r.Next()))
				switch {
				case err == nil:
					take(v)
				case errors.Is(err, context.Canceled):
					cancelled.Add(1)
				case errors.Is(err, accept.ErrClosed):
					return
				default:
					assert.NoError(t, err)
					return
				}
			}
		}()
	}

	for enqueued.Load() < closeAt {
		runtime.Gosched()
	}
	require.NoError(t, q.Close())
	closed.Store(true)
	for _, v := range q.Drain() {
		take(v)
	}
	require.ErrorIs(t, q.Close(), accept.ErrClosed, "second Close")
	waitAll(t, &producing, "the producers")
	waitAll(t, &consuming, "the consumers")

	n := 0
	for v := range accepted {
		a, r := accepted[v].Load(), returned[v].Load()
		require.LessOrEqual(t, a, int32(1))
		require.Equal(t, a, r, "value %d: accepted %d times, returned %d times", v, a, r)
		n += int(a)
	}
	require.GreaterOrEqual(t, int64(n), closeAt)
	require.Zero(t, q.Len())
	require.Zero(t, q.Sleepers(), "a consumer is still enrolled")
	t.Logf("%d values through the queue, %d dequeues and %d enqueues cancelled", n, cancelled.Load(), pcancelled.Load())
}

// Without Close: values go through a tiny queue that is full and empty
// by turns, put in by a yielding producer and a parking one, taken by
// parking consumers, and the sum checks that each was taken exactly once
// (xsync's hammer).
func TestQueueConcurrentSum(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		const producers, consumers, n = 2, 3, 6000 // n divisible by both
		q, err := accept.NewQueue[int](2)
		require.NoError(t, err)
		var sum atomic.Int64
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := p; i < n; i += producers {
					if p == 1 {
						if !assert.NoError(t, q.Enqueue(context.Background(), i)) {
							return
						}
						continue
					}
					for q.TryEnqueue(i) != nil {
						runtime.Gosched()
					}
				}
			}()
		}
		for range consumers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / consumers {
					v, err := q.Dequeue(context.Background())
					if !assert.NoError(t, err) {
						return
					}
					sum.Add(int64(v))
				}
			}()
		}
		waitAll(t, &wg, "the producers and consumers")
		require.Equal(t, int64(n*(n-1)/2), sum.Load())
		require.Zero(t, q.Len())
		require.Zero(t, q.Sleepers())
	})
}
