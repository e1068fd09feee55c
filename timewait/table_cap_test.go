package timewait

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// otherShard returns a flow whose entry lives in another shard than a's.
func otherShard(t *testing.T, tb *Table[int], a int) int {
	t.Helper()
	fa := flow(a, false)
	sa, _, _ := tb.locate(tb.hasher.Hash(fa), fa)
	for i := a + 1; i < a+1000; i++ {
		fb := flow(i, false)
		if sb, _, _ := tb.locate(tb.hasher.Hash(fb), fb); sb != sa {
			return i
		}
	}
	t.Fatal("no flow in another shard")
	return 0
}

// An Enter of a four-tuple that already has an entry fails with ErrExists
// and takes no unit of MaxBuckets meanwhile: while it runs (stopped by a
// test hook just before its duplicate check), Len stays at the cap's
// count and an Enter of a new four-tuple, one below the cap, succeeds.
// It used to reserve its unit first, so that Len passed the cap and the
// new tuple got ErrTimeWaitFull with room left.
func TestTableDuplicateEnterTakesNoRoom(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{MaxBuckets: 2, Shards: 4})
	a := flow(1, false)
	b := flow(otherShard(t, tb, 1), false)
	require.NoError(t, tb.Enter(a, twState(), 0))
	ran := false
	enterLocked = func() {
		if ran {
			return
		}
		ran = true
		assert.LessOrEqual(t, tb.Len(), 1, "a failing Enter counted as an entry")
		assert.NoError(t, tb.Enter(b, twState(), 0), "refused with room left")
	}
	defer func() { enterLocked = nil }()
	require.ErrorIs(t, tb.Enter(a, twState(), 0), ErrExists)
	require.True(t, ran)
	require.Equal(t, 2, tb.Len())
	require.Zero(t, tb.Stats().Overflows)
}

// At the cap, a duplicate is still a duplicate (ErrExists, not an
// overflow), and the count never passes the cap while it is refused.
func TestTableDuplicateEnterAtCap(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{MaxBuckets: 1, Shards: 1})
	a := flow(1, false)
	require.NoError(t, tb.Enter(a, twState(), 0))
	enterLocked = func() { require.LessOrEqual(t, tb.Len(), 1, "Len passed MaxBuckets") }
	defer func() { enterLocked = nil }()
	require.ErrorIs(t, tb.Enter(a, twState(), 0), ErrExists)
	require.ErrorIs(t, tb.Enter(flow(2, false), twState(), 0), ErrTimeWaitFull)
	require.Equal(t, 1, tb.Len())
	require.Equal(t, uint64(1), tb.Stats().Overflows)
}

// The same race without the hook: one goroutine enters a present tuple
// again and again while another enters and kills a new one, one below the
// cap, and a third watches Len. No Enter of the new tuple may be refused,
// and Len never passes the cap.
func TestTableDuplicateEnterRacesNew(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		tb, _ := newTestTable(t, testOptions{MaxBuckets: 2, Shards: 4})
		a := flow(1, false)
		b := flow(otherShard(t, tb, 1), false)
		require.NoError(t, tb.Enter(a, twState(), 0))
		const rounds = 5000
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !assert.ErrorIs(t, tb.Enter(a, twState(), 0), ErrExists) {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n := tb.Len(); n > 2 {
					assert.LessOrEqual(t, n, 2, "Len passed MaxBuckets")
					return
				}
			}
		}()
		refused := 0
		for range rounds {
			if err := tb.Enter(b, twState(), 0); err != nil {
				require.ErrorIs(t, err, ErrTimeWaitFull)
				refused++
				continue
			}
			_, ok := tb.Kill(b)
			require.True(t, ok)
		}
		close(stop)
		wg.Wait()
		require.Zero(t, refused, "Enters refused with room left, of %d", rounds)
	})
}
