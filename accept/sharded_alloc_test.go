//go:build !race

package accept

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TryEnqueue, TryAccept and Accept with a connection queued, TryAccept
// on an empty listener, and Depth allocate nothing.
func TestShardedAllocatesNothing(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 64})
	bound, _ := s.Register(0)
	unbound, _ := s.Register(Unbound)
	ctx := context.Background()
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i++
		_ = s.TryEnqueue(i%2, i)
		_ = s.TryEnqueue(0, i)
		_, _ = bound.TryAccept()
		_, _ = unbound.Accept(ctx)
		if _, err := bound.TryAccept(); err != ErrEmpty {
			panic("TryAccept found a connection on an empty listener")
		}
		_ = s.Depth() + s.ShardDepth(0)
		_ = s.Full()
	}))
	require.Zero(t, s.Len())
}

// Near a full backlog (a credit found in another shard's word, a refused
// Enqueue that searches, one refused while marked full) nothing allocates
// either.
func TestShardedFullBacklogAllocatesNothing(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 31})
	b, _ := s.Register(1)
	for i := range 32 {
		require.NoError(t, s.TryEnqueue(0, i))
	}
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i++
		if _, err := b.TryAccept(); err != nil {
			panic("nothing to accept")
		}
		if s.TryEnqueue(0, i) != nil {
			panic("the credit given back was not found")
		}
		if s.TryEnqueue(0, i) != ErrBacklog || s.TryEnqueue(1, i) != ErrBacklog {
			panic("the backlog admitted more than its limit")
		}
	}))
	require.Equal(t, 32, s.Len())
}
