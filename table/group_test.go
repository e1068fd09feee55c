package table

import (
	"testing"

	"github.com/socktable/socktable/tuple"
	"github.com/stretchr/testify/require"
)

// TestReachWord: the reach grows to cover the farthest entry, saturates
// at reachUnknown, and leaves the tags and the lock bit alone.
func TestReachWord(t *testing.T) {
	const groups = 1000
	for _, lock := range []uint64{0, lockedBit} {
		w := lock | 0x0002030405060708 // seven tags
		require.Equal(t, 1, reachOf(w, groups), "a fresh home holds its own entries")
		w = withReach(w, 1)
		require.Equal(t, 1, reachOf(w, groups), "an entry in the home group changes nothing")
		w = withReach(w, 3)
		require.Equal(t, 3, reachOf(w, groups))
		w = withReach(w, 2)
		require.Equal(t, 3, reachOf(w, groups), "the reach never shrinks while displaced entries remain")
		w = withReach(w, reachUnknown)
		require.Equal(t, reachUnknown, reachOf(w, groups), "depth 127 is still recorded")
		w = withReach(w, reachUnknown+1)
		require.Equal(t, groups, reachOf(w, groups), "depth 128 is not: unknown reach")
		require.Equal(t, lock|0x0002030405060708, w&(tagsMask|lockedBit), "tags and lock untouched")
		w = withoutReach(w)
		require.Equal(t, 1, reachOf(w, groups))
		require.Equal(t, lock|0x0002030405060708, w)
	}
}

// TestTagBytesIgnoreControl: the control byte (lock and reach) never
// reads as a tag, an empty slot or a free one.
func TestTagBytesIgnoreControl(t *testing.T) {
	w := withReach(lockedBit, 2) // all seven tags empty; control byte set
	require.Equal(t, uint64(tagMarks), emptyBytes(w))
	require.Equal(t, uint64(tagMarks), freeBytes(w))
	require.Zero(t, matchTag(w, byteAt(w, groupSlots)>>0), "a control byte equal to a tag is no match")
	full := uint64(0x0002020202020202) | w&^tagsMask
	require.Zero(t, emptyBytes(full))
	require.Zero(t, freeBytes(full))
	require.Equal(t, uint64(tagMarks), matchTag(full, 2))
}

// TestReachFollowsDisplacedEntries drives one home group through a
// degenerate hash: every key homes at group 0 with the same tag, so
// entries past the seventh overflow along the chain. The home's reach
// covers the farthest of them and returns to 1 once only the home's own
// entries are left.
func TestReachFollowsDisplacedEntries(t *testing.T) {
	m, err := NewEstablished[int](EstablishedOptions{Capacity: 200})
	require.NoError(t, err)
	m.hashMask = 0
	key := func(i int) tuple.Tuple {
		return tuple.Tuple{
			Local:  tuple.MustEndpoint("192.0.2.1:443"),
			Remote: tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 1024},
		}
	}
	const n = 3*groupSlots + 2 // four groups deep
	for i := range n {
		require.NoError(t, m.Insert(key(i), i))
	}
	tb := m.table.Load()
	require.Equal(t, 4, reachOf(tb.meta[0].tags.Load(), tb.groups))
	require.Equal(t, uint32(n-groupSlots), tb.displaced[0])
	for i := n - 1; i >= groupSlots; i-- { // the displaced ones, farthest first
		_, ok := m.Delete(key(i))
		require.True(t, ok)
		if i > groupSlots {
			require.Greater(t, reachOf(tb.meta[0].tags.Load(), tb.groups), 1, "key %d", i)
		}
	}
	require.Equal(t, 1, reachOf(tb.meta[0].tags.Load(), tb.groups))
	require.Zero(t, tb.displaced[0])
	for i := range groupSlots {
		v, ok := m.Lookup(key(i))
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	_, ok := m.Lookup(key(n))
	require.False(t, ok)
}
