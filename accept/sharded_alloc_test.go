//go:build !race

package accept

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Enqueue, TryAccept and Accept with a connection queued allocate nothing.
func TestShardedAllocatesNothing(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 64})
	bound, _ := s.Register(0)
	unbound, _ := s.Register(Unbound)
	ctx := context.Background()
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i++
		_ = s.Enqueue(i%2, i)
		_ = s.Enqueue(0, i)
		bound.TryAccept()
		_, _ = unbound.Accept(ctx)
	}))
	require.Zero(t, s.Len())
}
