package accept

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// Producers enqueue on random shards while acceptors join and leave at
// random (shards lose their last acceptor and drain, unbound acceptors
// steal, a context ends an Accept now and then), a closer closes acceptors
// in the middle of their Accepts (whose takes then put connections back),
// and the listener closes mid-flight: every connection whose Enqueue
// succeeded is accepted or handed back by Close exactly once.
func TestShardedStressExactlyOnce(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 4 {
			stressSharded(t, uint64(round))
		}
	})
}

// closer closes, until stop is closed, the acceptors that the acceptor
// goroutines publish in current, picked at random.
func closer(current []atomic.Pointer[Acceptor[int]], seed uint64, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Go(func() {
		r := porctest.NewRand(seed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if a := current[r.IntN(len(current))].Load(); a != nil {
				_ = a.Close() // ErrClosed if its goroutine or another round closed it first
			}
			for range r.IntN(64) {
				runtime.Gosched()
			}
		}
	})
}

func stressSharded(t *testing.T, seed uint64) {
	const producers, acceptors, perProducer, shards = 3, 4, 3000, 3
	s, err := NewSharded[int](ShardedOptions{Shards: shards, Backlog: 32})
	require.NoError(t, err)
	enqueued := make([][]int, producers)
	accepted := make([][]int, acceptors)
	current := make([]atomic.Pointer[Acceptor[int]], acceptors)
	var wg, closers sync.WaitGroup
	stop := make(chan struct{})
	closer(current, seed, stop, &closers)
	halfway := make(chan struct{}, producers)
	for p := range producers {
		wg.Go(func() {
			r := porctest.NewRand(seed*977 + uint64(p))
			for i := range perProducer {
				item := p*perProducer + i
				for {
					err := s.TryEnqueue(r.IntN(shards), item)
					if err == nil {
						enqueued[p] = append(enqueued[p], item)
						break
					}
					if err == ErrClosed {
						return
					}
					if !assert.ErrorIs(t, err, ErrBacklog) {
						return
					}
					runtime.Gosched()
				}
				if i == perProducer/2 {
					halfway <- struct{}{}
				}
			}
		})
	}
	for c := range acceptors {
		wg.Go(func() {
			r := porctest.NewRand(seed*131 + uint64(c))
			for {
				a, err := s.Register(r.IntN(shards+1) - 1) // Unbound or a shard
				if err == ErrClosed {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				current[c].Store(a)
				ctx, cancel := context.WithCancel(context.Background())
				for n := r.IntN(50); n > 0; n-- {
					if n == 3 && r.Next()&1 == 0 {
						cancel() // an Accept that gives up
					}
					v, err := a.Accept(ctx)
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							assert.ErrorIs(t, err, context.Canceled)
						}
						break // the closer's Close, or the listener's: register again, or find it closed
					}
					accepted[c] = append(accepted[c], v)
				}
				cancel()
				if err := a.Close(); err != nil {
					assert.ErrorIs(t, err, ErrClosed) // the closer was first
				}
			}
		})
	}
	for range producers {
		<-halfway
	}
	require.NoError(t, s.Close())
	leftover := s.Drain() // after Close returned: everything the acceptors did not take
	wg.Wait()
	require.Empty(t, s.Drain(), "a connection reached the listener after Close")
	close(stop)
	closers.Wait()
	seen := map[int]int{}
	for _, l := range accepted {
		for _, v := range l {
			seen[v]++
		}
	}
	for _, v := range leftover {
		seen[v]++
	}
	total := 0
	for _, l := range enqueued {
		for _, v := range l {
			require.Equal(t, 1, seen[v], "connection %d seen %d times", v, seen[v])
			delete(seen, v)
			total++
		}
	}
	require.Empty(t, seen, "connections accepted that were never enqueued")
	require.Positive(t, total)
	require.Zero(t, s.Len())
}

// Liveness: with acceptors joining and leaving, and closed by another
// goroutine in the middle of their Accepts, every enqueued connection is
// accepted without a Close to flush it out: a lost wake-up (or a
// connection put back with no one woken for it) would leave one queued
// with every acceptor asleep, and the watchdog would fire.
func TestShardedStressNoLostWakeup(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 4 {
			livenessSharded(t, uint64(round))
		}
	})
}

func livenessSharded(t *testing.T, seed uint64) {
	const producers, acceptors, perProducer, shards = 2, 3, 2000, 3
	s, err := NewSharded[int](ShardedOptions{Shards: shards, Backlog: 8})
	require.NoError(t, err)
	defer s.Close()
	// The watchdog bounds a hang; it is not how the test waits.
	watchdog, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var taken atomic.Int64
	current := make([]atomic.Pointer[Acceptor[int]], acceptors)
	var wg, closers sync.WaitGroup
	stopCloser := make(chan struct{})
	closer(current, seed, stopCloser, &closers)
	for p := range producers {
		wg.Go(func() {
			r := porctest.NewRand(seed*977 + uint64(p))
			for i := 0; i < perProducer; {
				if err := s.TryEnqueue(r.IntN(shards), i); err == nil {
					i++
				} else {
					runtime.Gosched() // backlog full: the acceptors must drain it
				}
				if watchdog.Err() != nil {
					return
				}
			}
		})
	}
	for c := range acceptors {
		wg.Go(func() {
			r := porctest.NewRand(seed*131 + uint64(c))
			for watchdog.Err() == nil && taken.Load() < producers*perProducer {
				a, err := s.Register(r.IntN(shards+1) - 1)
				if err == ErrClosed { // all taken, and the last taker closed
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				current[c].Store(a)
				for n := r.IntN(40); n > 0; n-- {
					if _, err := a.Accept(watchdog); err != nil {
						break
					}
					if taken.Add(1) == producers*perProducer {
						s.Close() // wakes the others
					}
				}
				a.Close()
			}
		})
	}
	wg.Wait()
	close(stopCloser)
	closers.Wait()
	require.NoError(t, watchdog.Err(), "connections left queued with every acceptor asleep: %d of %d taken",
		taken.Load(), producers*perProducer)
	require.Equal(t, int64(producers*perProducer), taken.Load())
}
