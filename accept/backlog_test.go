package accept

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// freeCredits is what the listener could still admit: the pool and every
// shard's two words, less the extra Migrate brought in. Only meaningful
// while no call runs.
func (s *Sharded[T]) freeCredits() int64 {
	n := s.backlog.pool.Load() - s.backlog.extra.Load()
	for i := range s.shards {
		n += s.shards[i].credits.Load() + s.shards[i].returned.Load()
	}
	return n
}

func (s *Sharded[T]) phase() uint64 { return s.backlog.state.Load() & phaseMask }

// fill enqueues on shard until the backlog refuses, and returns how many
// it admitted.
func fill(t *testing.T, s *Sharded[int], shard int) int {
	t.Helper()
	for n := 0; ; n++ {
		if err := s.TryEnqueue(shard, n); err != nil {
			require.ErrorIs(t, err, ErrBacklog)
			return n
		}
	}
}

// A shard keeps the rest of the batch it drew; an Enqueue on another
// shard that finds the pool empty still finds those credits, so the
// listener admits exactly Backlog+1 whichever shards the connections come
// from.
func TestBacklogFindsHoardedCredits(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 4, Backlog: 255})
	require.Equal(t, int64(8), s.backlog.batch)
	require.NoError(t, s.TryEnqueue(0, -1))
	require.Equal(t, int64(7), s.shards[0].credits.Load(), "shard 0 keeps the rest of its batch")
	require.Equal(t, 255, fill(t, s, 1), "shard 1 gets every other credit, shard 0's hoard included")
	require.Zero(t, s.freeCredits())
	require.Equal(t, 256, s.Len())
}

// A refused Enqueue marks the backlog full, so that the next ones refuse
// without searching the shards; the credit an Accept gives back reopens
// it, and is found wherever it was given back.
func TestBacklogFullUntilACreditReturns(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 3, Backlog: 47})
	require.Equal(t, int64(2), s.backlog.batch)
	a, err := s.Register(2) // gives its credits back to shard 2
	require.NoError(t, err)
	require.Equal(t, 48, fill(t, s, 0))
	require.Equal(t, uint64(phaseFull), s.phase())
	searches := 0
	s.beforeAnnounce = func() { searches++ }
	require.ErrorIs(t, s.TryEnqueue(1, 0), ErrBacklog)
	require.Zero(t, searches, "a refusal while full looks at its own word and the pool only")
	s.beforeAnnounce = nil
	require.Equal(t, uint64(2), s.Overflows())

	_, err = a.TryAccept()
	require.NoError(t, err)
	require.Equal(t, uint64(phaseOpen), s.phase(), "a give-back reopens the backlog")
	require.Equal(t, int64(1), s.shards[2].returned.Load(), "less than a batch stays with the shard")
	require.NoError(t, s.TryEnqueue(0, 48), "the credit given back to shard 2 is found from shard 0")
	require.ErrorIs(t, s.TryEnqueue(1, 49), ErrBacklog)
}

// The verdict of a search that a deposit overlapped is dropped, even if
// another search was announced after the deposit (the generation, not the
// phase alone, tells them apart); the last search's verdict stands until
// the next deposit.
func TestBacklogVerdictDroppedAfterDeposit(t *testing.T) {
	var b backlog
	first, ok := b.announce()
	require.True(t, ok)
	b.deposited() // a give-back lands during the first search
	second, ok := b.announce()
	require.True(t, ok)
	b.verdict(first, false)
	require.Equal(t, uint64(phaseSearching), b.state.Load()&phaseMask, "the first search's verdict is dropped")
	b.verdict(second, false)
	require.Equal(t, uint64(phaseFull), b.state.Load()&phaseMask)
	_, ok = b.announce()
	require.False(t, ok, "full: no search until a deposit")
	b.deposited()
	require.Equal(t, uint64(phaseOpen), b.state.Load()&phaseMask)
	third, ok := b.announce()
	require.True(t, ok)
	b.verdict(third, true)
	require.Equal(t, uint64(phaseOpen), b.state.Load()&phaseMask, "a search that found a credit reopens")
}

// Another Enqueue on the same shard can leave the rest of a batch in the
// shard's word after a searching Enqueue looked there and before it
// announced its search; the deposit saw nothing announced, so the search
// must look at its own shard's word again, or it would mark the backlog
// full while a credit sits there.
func TestBacklogSearchRereadsItsOwnWord(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 47})
	require.Equal(t, int64(3), s.backlog.batch)
	b, err := s.Register(1) // gives back to shard 1
	require.NoError(t, err)
	require.Equal(t, 48, fill(t, s, 0))
	_, err = b.TryAccept()
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(0, 100), "the credit given back is found")
	require.Equal(t, uint64(phaseOpen), s.phase())
	require.Zero(t, s.freeCredits(), "48 queued, no credit free, nothing announced")

	s.beforeAnnounce = func() {
		s.beforeAnnounce = nil
		for range 2 {
			_, err := b.TryAccept()
			require.NoError(t, err)
		}
		// Takes both credits given back to shard 1, keeps one, and
		// leaves the other in shard 0's word, with nothing announced.
		require.NoError(t, s.TryEnqueue(0, 101))
		require.Equal(t, int64(1), s.shards[0].credits.Load())
	}
	require.NoError(t, s.TryEnqueue(0, 102), "the credit left in its own shard's word is found")
	require.Zero(t, s.freeCredits())
	require.ErrorIs(t, s.TryEnqueue(1, 103), ErrBacklog)
	require.Equal(t, 48, s.Len())
}

// Migrate brings connections in over the limit as extra, which the
// Accepts that follow use up before any credit returns, so the listener
// admits new connections only once it is back under its backlog.
func TestBacklogMigratedExtra(t *testing.T) {
	from := newSharded(t, ShardedOptions{Shards: 2, Backlog: 3})
	to := newSharded(t, ShardedOptions{Shards: 2, Backlog: 3})
	require.Equal(t, 4, fill(t, from, 0))
	require.Equal(t, 2, fill(t, to, 1)-2) // to: 4 queued of its own
	left, err := from.Migrate(to)
	require.NoError(t, err)
	require.Empty(t, left)
	require.Equal(t, int64(4), to.backlog.extra.Load())
	require.Equal(t, 8, to.Len())
	u, _ := to.Register(Unbound)
	for i := range 4 {
		_, err := u.TryAccept()
		require.NoError(t, err)
		require.ErrorIs(t, to.TryEnqueue(0, 100+i), ErrBacklog, "still at its backlog after %d accepts", i+1)
	}
	require.Zero(t, to.backlog.extra.Load())
	_, err = u.TryAccept()
	require.NoError(t, err)
	require.NoError(t, to.TryEnqueue(0, 200))
	require.Zero(t, to.freeCredits())
}

// Producers, two on every shard, and acceptors bound and unbound run a storm in
// which the backlog is full most of the time; once every connection is
// accepted, every credit is back (none lost, none made) and the listener
// admits exactly Backlog+1 again.
func TestBacklogCreditsConserved(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		const shards, perProducer = 4, 5000
		s := newSharded(t, ShardedOptions{Shards: shards, Backlog: 99})
		require.Equal(t, int64(3), s.backlog.batch)
		var accs []*Acceptor[int]
		for _, shard := range []int{0, 1, Unbound, Unbound} {
			a, err := s.Register(shard)
			require.NoError(t, err)
			accs = append(accs, a)
		}
		var admitted, refused, accepted atomic.Int64
		var producers, acceptors sync.WaitGroup
		for p := range 2 * shards { // two per shard: one may leave a batch's rest for the other
			producers.Go(func() {
				for i := range perProducer {
					if s.TryEnqueue(p%shards, i) == nil {
						admitted.Add(1)
					} else {
						refused.Add(1)
						runtime.Gosched()
					}
				}
			})
		}
		ctx, stop := context.WithCancel(context.Background())
		for _, a := range accs {
			acceptors.Go(func() {
				for {
					if _, err := a.Accept(ctx); err != nil {
						return
					}
					accepted.Add(1)
				}
			})
		}
		producers.Wait()
		for accepted.Load() != admitted.Load() {
			runtime.Gosched()
		}
		stop()
		acceptors.Wait()
		require.Positive(t, refused.Load(), "the storm never filled the backlog")
		require.Zero(t, s.Len())
		require.Equal(t, int64(100), s.freeCredits())
		require.Equal(t, 100, fill(t, s, 3))
	})
}

// Migrate into a listener whose producers and acceptors are busy: every
// migrated connection is accepted once, the extra it used is used up, and
// once all is accepted every credit is back.
func TestBacklogMigrateUnderLoad(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	from := newSharded(t, ShardedOptions{Shards: 2, Backlog: 63})
	to := newSharded(t, ShardedOptions{Shards: 2, Backlog: 63})
	for i := range 64 {
		require.NoError(t, from.TryEnqueue(i%2, -1-i))
	}
	var accs []*Acceptor[int]
	for _, shard := range []int{0, Unbound} {
		a, err := to.Register(shard)
		require.NoError(t, err)
		accs = append(accs, a)
	}
	var admitted, accepted, migrated atomic.Int64
	var producers, acceptors sync.WaitGroup
	for p := range 2 {
		producers.Go(func() {
			for i := range 3000 {
				if to.TryEnqueue(p, i) == nil {
					admitted.Add(1)
				} else {
					runtime.Gosched()
				}
			}
		})
	}
	ctx, stop := context.WithCancel(context.Background())
	for _, a := range accs {
		acceptors.Go(func() {
			for {
				v, err := a.Accept(ctx)
				if err != nil {
					return
				}
				accepted.Add(1)
				if v < 0 {
					migrated.Add(1)
				}
			}
		})
	}
	left, err := from.Migrate(to)
	require.NoError(t, err)
	require.Empty(t, left, "two backlogs fit in to")
	producers.Wait()
	for accepted.Load() != admitted.Load()+64 {
		runtime.Gosched()
	}
	stop()
	acceptors.Wait()
	require.Equal(t, int64(64), migrated.Load())
	require.Zero(t, to.backlog.extra.Load())
	require.Equal(t, int64(64), to.freeCredits())
	require.Equal(t, 64, fill(t, to, 1))
}
