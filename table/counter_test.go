package table

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// An entry counted on one P and uncounted on another leaves one stripe
// above its share and another below zero; the totals must still be exact.
func TestCountersSumAcrossStripes(t *testing.T) {
	c := counters{stripes: make([]counter, 4), mask: 3}
	live, used := uint64(1), uint64(usedOne)
	c.stripes[0].v.Add(live + used) // two inserts into empty slots on P0
	c.stripes[0].v.Add(live + used)
	c.stripes[3].v.Add(-(live + used)) // one delete on P3 that empties its slot
	c.stripes[2].v.Add(-live)          // one on P2 that leaves a tombstone
	require.Equal(t, 0, c.live())
	require.Equal(t, 1, c.used())

	c.stripes[1].v.Add(1) // an insert reusing the tombstone on P1
	require.Equal(t, 1, c.live())
	require.Equal(t, 1, c.used())
}

// One goroutine inserts, another deletes what it inserted: their counts
// land in different stripes whenever they run on different Ps, and Len
// and the grow and shrink decisions must not drift.
func TestLenExactWhenInsertsAndDeletesRunApart(t *testing.T) {
	m, err := NewEstablished[uint64](EstablishedOptions{})
	require.NoError(t, err)
	const n = 20000
	inserted := make(chan int, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range inserted {
			_, ok := m.Delete(testKey(i))
			assert.True(t, ok, "inserted key %d missing", i)
		}
	}()
	for i := range n {
		require.NoError(t, m.Insert(testKey(i), uint64(i)))
		inserted <- i
	}
	close(inserted)
	<-done
	require.Equal(t, 0, m.Len())
	st := m.Stats()
	require.Equal(t, 0, st.Entries)
	// At most 65 entries were ever live: a drifting count would have
	// grown the table without end (or never let it shrink back).
	require.LessOrEqual(t, st.Slots, 64*groupSlots)
}

// testKey returns a distinct tuple for each i.
func testKey(i int) tuple.Tuple {
	return tuple.Tuple{
		Local:  tuple.MustEndpoint("192.0.2.1:443"),
		Remote: tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: 40000},
	}
}
