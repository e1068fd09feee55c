package accept

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Producers enqueue on random shards while acceptors join and leave at
// random (shards lose their last acceptor and drain, unbound acceptors
// steal, a context ends an Accept now and then) and the listener closes
// mid-flight: every connection whose Enqueue succeeded is accepted or
// handed back by Close exactly once.
func TestShardedStressExactlyOnce(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for round := range 4 {
				stressSharded(t, uint64(round))
			}
		})
	}
}

func stressSharded(t *testing.T, seed uint64) {
	const producers, acceptors, perProducer, shards = 3, 4, 3000, 3
	s, err := NewSharded[int](ShardedOptions{Shards: shards, Backlog: 32})
	require.NoError(t, err)
	enqueued := make([][]int, producers)
	accepted := make([][]int, acceptors)
	var wg sync.WaitGroup
	halfway := make(chan struct{}, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*977 + uint64(p) | 1
			for i := range perProducer {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				item := p*perProducer + i
				for {
					err := s.Enqueue(int(x%shards), item)
					if err == nil {
						enqueued[p] = append(enqueued[p], item)
						break
					}
					if err == ErrClosed {
						return
					}
					require.ErrorIs(t, err, ErrBacklog)
					runtime.Gosched()
				}
				if i == perProducer/2 {
					halfway <- struct{}{}
				}
			}
		}()
	}
	for c := range acceptors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*131 + uint64(c) | 1
			for {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				shard := int(x%(shards+1)) - 1 // Unbound or a shard
				a, err := s.Register(shard)
				if err == ErrClosed {
					return
				}
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				for n := int(x >> 8 % 50); n > 0; n-- {
					if n == 3 && x&1 == 0 {
						cancel() // an Accept that gives up
					}
					v, err := a.Accept(ctx)
					if err == ErrClosed {
						cancel()
						a.Close()
						return
					}
					if err != nil {
						require.ErrorIs(t, err, context.Canceled)
						break
					}
					accepted[c] = append(accepted[c], v)
				}
				cancel()
				require.NoError(t, a.Close())
			}
		}()
	}
	for range producers {
		<-halfway
	}
	leftover := s.Close()
	wg.Wait()
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

// Liveness: with acceptors joining and leaving, every enqueued connection
// is accepted without a Close to flush it out: a lost wake-up would leave
// one queued with every acceptor asleep, and the watchdog would fire.
func TestShardedStressNoLostWakeup(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for round := range 4 {
				livenessSharded(t, uint64(round))
			}
		})
	}
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
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*977 + uint64(p) | 1
			for i := 0; i < perProducer; {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				if err := s.Enqueue(int(x%shards), i); err == nil {
					i++
				} else {
					runtime.Gosched() // backlog full: the acceptors must drain it
				}
				if watchdog.Err() != nil {
					return
				}
			}
		}()
	}
	for c := range acceptors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*131 + uint64(c) | 1
			for watchdog.Err() == nil && taken.Load() < producers*perProducer {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				a, err := s.Register(int(x%(shards+1)) - 1)
				if err == ErrClosed { // all taken, and the last taker closed
					return
				}
				require.NoError(t, err)
				for n := int(x >> 8 % 40); n > 0; n-- {
					if _, err := a.Accept(watchdog); err != nil {
						break
					}
					if taken.Add(1) == producers*perProducer {
						s.Close() // wakes the others
					}
				}
				a.Close()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, watchdog.Err(), "connections left queued with every acceptor asleep: %d of %d taken",
		taken.Load(), producers*perProducer)
	require.Equal(t, int64(producers*perProducer), taken.Load())
}
