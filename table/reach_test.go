package table

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReachWord follows one home group's state word through placements
// and removals: the reach is the farthest displaced entry's distance, it
// drops to 0 only with the last displaced entry, and the lock bit is
// never touched.
func TestReachWord(t *testing.T) {
	const groups = 1000
	for _, lock := range []uint32{0, stateLocked} {
		w := lock
		require.Equal(t, 1, reachOf(w, groups), "a fresh home holds its own entries")
		w = withDisplaced(w, 1)
		require.Equal(t, lock, w, "an entry in the home group changes nothing")
		w = withDisplaced(w, 3)
		require.Equal(t, 3, reachOf(w, groups))
		w = withDisplaced(w, 2)
		require.Equal(t, 3, reachOf(w, groups), "the reach never shrinks while displaced entries remain")
		w = withoutDisplaced(w, 3)
		require.Equal(t, 3, reachOf(w, groups), "one displaced entry remains")
		w = withoutDisplaced(w, 1)
		require.Equal(t, 3, reachOf(w, groups), "removing an entry of the home group changes nothing")
		w = withoutDisplaced(w, 2)
		require.Equal(t, 1, reachOf(w, groups), "the last displaced entry is gone")
		require.Equal(t, lock, w)
		require.Equal(t, lock, w&stateLocked)
	}
}

// TestReachOverflow: a chain too long to record walks to an empty slot,
// and a saturated count stays saturated (it can no longer tell when the
// last displaced entry leaves).
func TestReachOverflow(t *testing.T) {
	const groups = 1000
	w := withDisplaced(0, reachUnknown)
	require.Equal(t, reachUnknown, reachOf(w, groups), "depth 127 is still recorded")
	w = withDisplaced(w, reachUnknown+1)
	require.Equal(t, groups, reachOf(w, groups), "depth 128 is not: unknown reach")
	w = withoutDisplaced(withoutDisplaced(w, 200), 2)
	require.Equal(t, 1, reachOf(w, groups), "the count still returns the reach to 0")

	w = uint32(displacedMax-1) << displacedShift
	w = withDisplaced(w, 2)
	require.Equal(t, uint32(displacedMax), w>>displacedShift)
	require.Equal(t, groups, reachOf(w, groups), "a saturated count makes the reach unknown")
	require.Equal(t, w, withDisplaced(w, 5))
	require.Equal(t, w, withoutDisplaced(w, 5), "a saturated count is sticky")
}
