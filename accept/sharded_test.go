package accept

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/internal/stattest"
	"github.com/socktable/socktable/tuple"
)

func newSharded(t testing.TB, opts ShardedOptions) *Sharded[int] {
	t.Helper()
	s, err := NewSharded[int](opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// waitParked yields until n acceptors sleep in s: how a test knows an
// Accept has blocked, with no sleep.
func waitParked[T any](t testing.TB, s *Sharded[T], n int32) {
	t.Helper()
	for i := 0; s.parked.Load() != n; i++ {
		if i > 1e7 {
			t.Fatalf("%d acceptors parked, want %d", s.parked.Load(), n)
		}
		runtime.Gosched()
	}
}

func TestShardedOptions(t *testing.T) {
	for _, o := range []ShardedOptions{{Shards: -1}, {Shards: MaxShards + 1}, {Somaxconn: -1}, {Somaxconn: MaxSomaxconn + 1}} {
		_, err := NewSharded[int](o)
		require.ErrorIs(t, err, ErrCapacity, "%+v", o)
	}
	for _, c := range []struct{ backlog, somax, want int }{
		{0, 0, 1}, {1, 0, 2}, {128, 0, 129}, {-1, 0, DefaultSomaxconn + 1}, {5000, 0, DefaultSomaxconn + 1},
		{100, 10, 11}, {-7, 10, 11},
	} {
		s := newSharded(t, ShardedOptions{Shards: 2, Backlog: c.backlog, Somaxconn: c.somax})
		require.Equal(t, c.want, s.Backlog(), "backlog %d somaxconn %d", c.backlog, c.somax)
	}
	s := newSharded(t, ShardedOptions{})
	require.Equal(t, runtime.GOMAXPROCS(0), s.Shards())
}

// The backlog holds Backlog+1 across all queues, as Linux's accept queue.
func TestShardedBacklog(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 4, Backlog: 2})
	a, err := s.Register(1)
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(1, 1)) // local
	require.NoError(t, s.TryEnqueue(0, 2)) // global: no acceptor on shard 0
	require.NoError(t, s.TryEnqueue(3, 3))
	require.ErrorIs(t, s.TryEnqueue(1, 4), ErrBacklog)
	require.ErrorIs(t, s.TryEnqueue(2, 4), ErrBacklog)
	require.Equal(t, uint64(2), s.Overflows())
	require.Equal(t, 3, s.Len())
	v, err := a.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 1, v, "local first")
	require.NoError(t, s.TryEnqueue(2, 5))
	require.ErrorIs(t, s.TryEnqueue(2, 6), ErrBacklog)

	require.ErrorIs(t, s.TryEnqueue(4, 0), ErrInvalid)
	require.ErrorIs(t, s.TryEnqueue(-1, 0), ErrInvalid)
	_, err = s.Register(4)
	require.ErrorIs(t, err, ErrInvalid)

	zero := newSharded(t, ShardedOptions{Shards: 1, Backlog: 0})
	require.NoError(t, zero.TryEnqueue(0, 1), "backlog 0 holds one connection")
	require.ErrorIs(t, zero.TryEnqueue(0, 2), ErrBacklog)
}

// Close returns what is queued; blocked and later Accepts see ErrClosed.
func TestShardedClose(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	a, _ := s.Register(0)
	b, _ := s.Register(1)
	require.NoError(t, s.TryEnqueue(0, 1))
	require.NoError(t, s.TryEnqueue(1, 2))
	require.NoError(t, s.TryEnqueue(0, 3))
	v, _ := b.TryAccept()
	require.Equal(t, 2, v)
	res := acceptAsync(context.Background(), b)
	waitParked(t, s, 1)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Close(), ErrClosed)
	require.Equal(t, 2, s.Len(), "queued until Drain")
	_, err := a.TryAccept()
	require.ErrorIs(t, err, ErrClosed, "nothing is accepted after Close, even with connections queued")
	require.ElementsMatch(t, []int{1, 3}, s.Drain())
	require.Nil(t, s.Drain())
	require.ErrorIs(t, (<-res).err, ErrClosed)
	_, err = a.Accept(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.TryEnqueue(0, 4), ErrClosed)
	_, err = s.Register(0)
	require.ErrorIs(t, err, ErrClosed)
	require.Zero(t, s.Len())
}

// Migrate hands the queue to another member and wakes its acceptor (the
// wake-up Linux once forgot).
func TestShardedMigrate(t *testing.T) {
	from := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	to := newSharded(t, ShardedOptions{Shards: 2, Backlog: 1})
	fa, _ := from.Register(0)
	_ = fa
	require.NoError(t, from.TryEnqueue(0, 1))
	require.NoError(t, from.TryEnqueue(1, 2))
	require.NoError(t, from.TryEnqueue(0, 3))
	ta, _ := to.Register(1)
	res := acceptAsync(context.Background(), ta)
	waitParked(t, to, 1)
	rest, err := from.Migrate(to)
	require.NoError(t, err)
	require.Empty(t, rest)
	got := []int{(<-res).v}
	for {
		v, err := ta.TryAccept()
		if err != nil {
			require.ErrorIs(t, err, ErrEmpty)
			break
		}
		got = append(got, v)
	}
	require.ElementsMatch(t, []int{1, 2, 3}, got, "migration is not limited by the target's backlog")
	require.ErrorIs(t, from.TryEnqueue(0, 9), ErrClosed)
	_, err = from.Migrate(to)
	require.ErrorIs(t, err, ErrClosed)
	_, err = to.Migrate(to)
	require.ErrorIs(t, err, ErrInvalid)

	// A closed target takes nothing: everything comes back for a reset.
	a := newSharded(t, ShardedOptions{Shards: 1, Backlog: 10})
	require.NoError(t, a.TryEnqueue(0, 5))
	closed := newSharded(t, ShardedOptions{Shards: 1})
	require.NoError(t, closed.Close())
	rest, err = a.Migrate(closed)
	require.NoError(t, err)
	require.Equal(t, []int{5}, rest)
}

// MigrateEach sends each connection to the listener its target function
// picks (Linux's per-child reuseport_migrate_sock), waking a sleeping
// acceptor there; the connections with no target, or whose target is
// closed, is s itself, or is two backlogs full, come back for a reset.
func TestShardedMigrateEach(t *testing.T) {
	from := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	for v := 1; v <= 9; v++ {
		require.NoError(t, from.TryEnqueue(v%2, v)) // no acceptors: all in the global queue, in order
	}
	a := newSharded(t, ShardedOptions{Shards: 2, Backlog: 4})
	b := newSharded(t, ShardedOptions{Shards: 1, Backlog: 4})
	closed := newSharded(t, ShardedOptions{Shards: 1})
	require.NoError(t, closed.Close())
	full := newSharded(t, ShardedOptions{Shards: 1, Backlog: 0}) // holds 1, and 1 migrated over it
	require.NoError(t, full.TryEnqueue(0, 100))
	aa, err := a.Register(1)
	require.NoError(t, err)
	res := acceptAsync(context.Background(), aa)
	waitParked(t, a, 1)

	var calls []int
	rest, err := from.MigrateEach(func(v int) *Sharded[int] {
		calls = append(calls, v)
		switch v {
		case 4, 8:
			return a
		case 1, 5:
			return b
		case 3:
			return closed
		case 7:
			return from // closed by now
		case 6, 9:
			return full
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, calls, "one call per connection, in Drain's order")
	require.Equal(t, []int{2, 3, 7, 9}, rest, "no target, closed, itself, two backlogs full")
	r := <-res
	require.NoError(t, r.err, "a's sleeping acceptor is woken")
	require.Equal(t, 4, r.v)
	v, err := aa.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 8, v)
	ba, _ := b.Register(Unbound)
	for _, want := range []int{1, 5} {
		v, err := ba.TryAccept()
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
	require.Equal(t, 2, full.Len())
	require.ErrorIs(t, full.TryEnqueue(0, 101), ErrBacklog, "the one over the backlog is used up first")

	require.ErrorIs(t, from.TryEnqueue(0, 10), ErrClosed)
	_, err = from.MigrateEach(func(int) *Sharded[int] { return a })
	require.ErrorIs(t, err, ErrClosed)
	require.Nil(t, from.Drain())
}

// Depth counts every queue of the listener, ShardDepth one local queue.
func TestShardedDepth(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 3, Backlog: 10})
	_, err := s.Register(0)
	require.NoError(t, err)
	require.Zero(t, s.Depth())
	require.NoError(t, s.TryEnqueue(0, 1)) // local
	require.NoError(t, s.TryEnqueue(0, 2))
	require.NoError(t, s.TryEnqueue(2, 3)) // global
	require.Equal(t, 3, s.Depth())
	for shard, want := range []int{2, 0, 0} {
		require.Equal(t, want, s.ShardDepth(shard))
	}
	require.Zero(t, s.ShardDepth(-1))
	require.Zero(t, s.ShardDepth(3))
	// A claimed enqueue counts, as Queue.Len counts it.
	require.True(t, s.acquire(1))
	publish, err := s.global.Claim()
	require.NoError(t, err)
	require.Equal(t, 4, s.Depth())
	publish(4)
	require.NoError(t, s.Close())
	require.Equal(t, 4, s.Depth(), "queued until Drain")
	require.Len(t, s.Drain(), 4)
	require.Zero(t, s.Depth())
}

func TestShardedSteer(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 3})
	seen := map[int]bool{}
	for h := uint64(0); h < 1<<20; h += 1 << 10 {
		i := s.Steer(h * 0x9e3779b97f4a7c15)
		require.Equal(t, i, s.Steer(h*0x9e3779b97f4a7c15), "consistent")
		seen[i] = true
	}
	require.Len(t, seen, 3)
	for q := range uint32(RSSIndirectionSize) {
		require.Equal(t, int(q%3), s.SteerRSS(q|0xabc<<7), "indirection entry %d is queue %d", q, q%3)
	}
}

// Steer and the SO_REUSEPORT member choice are made from the same flow
// hash (table.ListenerIndex picks the member with tuple.Shard), so Steer must
// not read the bits the member choice reads: over every (member, shard)
// cell the flows spread evenly. With Steer on the same top bits, member i
// of 4 on 2 shards would only ever reach shard i/2. (Before the fix, this
// failed for every pair.)
func TestShardedSteerIndependentOfReuseport(t *testing.T) {
	const flows = 1 << 15
	for _, c := range []struct{ members, shards int }{{4, 2}, {2, 4}, {3, 2}, {5, 3}, {4, 4}, {7, 16}, {3, 5}, {6, 4}} {
		t.Run(fmt.Sprintf("members=%d/shards=%d", c.members, c.shards), func(t *testing.T) {
			s := newSharded(t, ShardedOptions{Shards: c.shards})
			r := porctest.NewRand(uint64(c.members*100 + c.shards)) // stands in for keyed flow hashes
			counts := make([]int, c.members*c.shards)
			for range flows {
				h := r.Next()
				counts[tuple.Shard(h, c.members)*c.shards+s.Steer(h)]++
			}
			stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
			require.Truef(t, ok, "chi-square %.1f outside [%.1f, %.1f]: %v", stat, lo, hi, counts)
		})
	}
	// The check can fail: both choices from the same bits.
	r := porctest.NewRand(1)
	counts := make([]int, 8)
	for range flows {
		h := r.Next()
		counts[tuple.Shard(h, 4)*2+tuple.Shard(h, 2)]++
	}
	_, _, _, ok := stattest.ChiSquareUniform(counts)
	require.False(t, ok, "correlated choices must fail the test: %v", counts)
}

// Full is the SYN's check (sk_acceptq_is_full): true once Backlog+1
// connections are queued, false as soon as one is accepted, and true
// while connections migrated in over the limit are queued, whatever the
// pool holds.
func TestShardedFull(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 3})
	a, err := s.Register(0)
	require.NoError(t, err)
	for i := range 4 {
		require.False(t, s.Full(), "%d queued", i)
		require.NoError(t, s.TryEnqueue(i%2, i))
	}
	require.True(t, s.Full())
	require.ErrorIs(t, s.TryEnqueue(0, 9), ErrBacklog)
	_, err = a.TryAccept()
	require.NoError(t, err)
	require.False(t, s.Full())

	// Three connections migrated into an empty listener of backlog 1
	// (limit 2): one over the limit, held as extra.
	from := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	to := newSharded(t, ShardedOptions{Shards: 2, Backlog: 1})
	ta, err := to.Register(1)
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, from.TryEnqueue(0, i))
	}
	rest, err := from.Migrate(to)
	require.NoError(t, err)
	require.Empty(t, rest)
	require.True(t, to.Full())
	for want := 3; want > 0; want-- {
		require.Equal(t, want >= 2, to.Full(), "%d queued", want)
		_, err := ta.TryAccept()
		require.NoError(t, err)
	}
	require.False(t, to.Full())
}
