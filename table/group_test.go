package table

import (
	"math/bits"
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

// TestSlotWord: the fifth key word keeps the ports, the live bit, the
// kind and the version apart. Every change of the entry moves the
// version, a kind change moves it once it ends, and the version wraps
// at the top of the word without touching the fields below.
func TestSlotWord(t *testing.T) {
	var s slot[uint64]
	const ports = 443<<16 | 40000
	s.fillKey(valueWord, &key{1, 2, 3, 4, ports}, 7)
	s.activate(ports | uint64(KindRequest)<<kindShift)
	w := s.k[4].Load()
	require.Equal(t, uint64(ports), w&portsMask)
	require.NotZero(t, w&slotLive)
	require.Equal(t, KindRequest, kindOf(w))
	require.Zero(t, w&slotChanging)
	require.Equal(t, uint64(1), w/slotVersionOne)
	k, v, ok := s.loadLive(valueWord)
	require.True(t, ok)
	require.Equal(t, uint64(7), v)
	require.Equal(t, KindRequest, kindOf(k[4]), "a resize copies the kind")
	require.Zero(t, k[4]&^(portsMask|slotKind), "but not the version")

	s.beginKindChange(w)
	require.Equal(t, w|slotChanging, s.k[4].Load(), "the version holds until the change ends")
	storeValue(valueWord, &s, 8)
	s.endKindChange(w, KindConn)
	w2 := s.k[4].Load()
	require.Equal(t, w&(portsMask|slotLive), w2&(portsMask|slotLive))
	require.Equal(t, KindConn, kindOf(w2))
	require.Zero(t, w2&slotChanging)
	require.Equal(t, uint64(2), w2/slotVersionOne)

	s.retire(valueWord)
	w3 := s.k[4].Load()
	require.Zero(t, w3&slotLive)
	require.Equal(t, KindConn, kindOf(w3))
	require.Equal(t, uint64(ports), w3&portsMask)
	require.Equal(t, uint64(3), w3/slotVersionOne)
	_, _, ok = s.loadLive(valueWord)
	require.False(t, ok)

	// The last version wraps to 0, the fields below intact.
	top := uint64(1<<64-slotVersionOne) | slotLive | 3<<kindShift | ports
	s.k[4].Store(top)
	s.endKindChange(top, KindRequest)
	require.Equal(t, slotLive|uint64(KindRequest)<<kindShift|ports, s.k[4].Load())
	s.k[4].Store(top)
	s.activate(ports)
	require.Equal(t, slotLive|uint64(ports), s.k[4].Load())
	require.Equal(t, 28, 64-bits.TrailingZeros64(slotVersionOne), "version bits")
}
