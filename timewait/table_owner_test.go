package timewait

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// Replace runs install under the entry's lock and removes the entry in
// the same step only if install succeeds; with no entry install still
// runs.
func TestTableReplace(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{})
	a := flow(1, false)
	require.NoError(t, tb.Enter(a, twState(), 11))

	refused := errors.New("refused")
	owner, ok, err := tb.Replace(a, func() error { return refused })
	require.ErrorIs(t, err, refused)
	require.False(t, ok)
	require.Zero(t, owner)
	_, ok = tb.Lookup(a)
	require.True(t, ok, "a failed install leaves the entry")

	ran := false
	owner, ok, err = tb.Replace(a, func() error {
		ran = true
		// The entry is still there while install runs: a demux that
		// looks in the established table first and here second sees the
		// new connection or the old entry, never neither.
		_, present := tb.Lookup(a)
		require.True(t, present)
		return nil
	})
	require.NoError(t, err)
	require.True(t, ran)
	require.True(t, ok)
	require.Equal(t, 11, owner)
	_, ok = tb.Lookup(a)
	require.False(t, ok)
	require.Equal(t, uint64(1), tb.Stats().Killed)

	ran = false
	owner, ok, err = tb.Replace(a, func() error { ran = true; return nil })
	require.NoError(t, err)
	require.True(t, ran, "install runs with no entry too")
	require.False(t, ok)
	require.Zero(t, owner)
}

// The …Hashed twins take the caller's hash of the four-tuple: with the
// table's Hasher's hash they do what the plain methods do; with another
// hash they miss (Replace still runs install).
func TestTableHashed(t *testing.T) {
	hasher := tuple.NewHasher()
	tb, clk := newTestTable(t, testOptions{Hasher: hasher, Reuse: ReuseOn})
	require.Same(t, hasher, tb.Hasher())
	a := flow(1, false)
	h := hasher.Hash(a)
	wrong := h ^ 0x5555_5555_5555_5555
	clk.Set(ruleT0)
	require.NoError(t, tb.EnterHashed(h, a, twState(), 1))
	require.ErrorIs(t, tb.Enter(a, twState(), 2), ErrExists, "the plain and the hashed calls meet")

	_, ok := tb.LookupHashed(wrong, a)
	require.False(t, ok)
	st, ok := tb.LookupHashed(h, a)
	require.True(t, ok)
	require.Equal(t, twState(), st)

	ack := seg(tuple.ACK, 1000, 0, 200)
	_, _, ok = tb.ProcessHashed(wrong, a, &ack)
	require.False(t, ok)
	r, _, ok := tb.ProcessHashed(h, a, &ack)
	require.True(t, ok)
	require.Equal(t, FateRestarted, r.Fate)

	_, ok = tb.ReusableHashed(wrong, a, true)
	require.False(t, ok)
	_, ok = tb.ReusableHashed(h, a, true)
	require.True(t, ok)
	_, _, ok = tb.TakeOverHashed(wrong, a, true)
	require.False(t, ok)
	_, ok = tb.KillHashed(wrong, a)
	require.False(t, ok)
	ran := false
	_, ok, err := tb.ReplaceHashed(wrong, a, func() error { ran = true; return nil })
	require.NoError(t, err)
	require.True(t, ran)
	require.False(t, ok)

	owner, ok := tb.KillHashed(h, a)
	require.True(t, ok)
	require.Equal(t, 1, owner)
	require.NoError(t, tb.EnterHashed(h, a, twState(), 3))
	_, owner, ok = tb.TakeOverHashed(h, a, true)
	require.True(t, ok)
	require.Equal(t, 3, owner)
	require.NoError(t, tb.EnterHashed(h, a, twState(), 4))
	owner, ok, err = tb.ReplaceHashed(h, a, func() error { return nil })
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 4, owner)
	require.Zero(t, tb.Len())
}

// An entry entered with a wrong hash is missed by the calls with the
// right one, but is no harm to the table: its timer still removes it and
// hands its owner to OnExpire, and the other entries stay findable.
func TestTableEnterHashedWrongHash(t *testing.T) {
	var got []int
	tb, clk := newTestTable(t, testOptions{Shards: 2, OnExpire: func(_ tuple.Tuple, owner int) { got = append(got, owner) }})
	a := flow(1, false)
	require.NoError(t, tb.EnterHashed(tb.Hasher().Hash(a)^0xdead_beef_0000_0001, a, twState(), 1))
	for i := 2; i < 200; i++ {
		require.NoError(t, tb.Enter(flow(i, false), twState(), i))
	}
	for i := 2; i < 200; i += 2 {
		_, ok := tb.Kill(flow(i, false))
		require.True(t, ok)
	}
	for i := 3; i < 200; i += 2 {
		_, ok := tb.Lookup(flow(i, false))
		require.True(t, ok, "entry %d", i)
	}
	clk.Advance(2 * TimeWaitLen)
	tb.Advance()
	require.Zero(t, tb.Len())
	require.Contains(t, got, 1)
	require.Len(t, got, 1+99)
}

// OnExpire runs with no lock of the table held: it may call back into the
// table, even on the expired entry's own shard (re-entering the tuple,
// killing a neighbour), which would deadlock under the shard's lock.
func TestTableOnExpireHoldsNoLock(t *testing.T) {
	var tb *Table[int]
	a, b := flow(1, false), flow(2, false)
	calls := 0
	tb, clk := newTestTable(t, testOptions{Shards: 1, OnExpire: func(tp tuple.Tuple, owner int) {
		calls++
		if owner == 1 {
			require.NoError(t, tb.Enter(tp, twState(), 3), "re-enter from the hook")
			_, ok := tb.Kill(b)
			require.True(t, ok, "kill a neighbour from the hook")
			_, ok = tb.Lookup(tp)
			require.True(t, ok)
		}
	}})
	require.NoError(t, tb.Enter(a, twState(), 1))
	clk.Set(10 * time.Second) // b is due 10 s after a: in another bucket of the 4.096 s level
	require.NoError(t, tb.Enter(b, twState(), 2))
	clk.Set(TimeWaitLen + 4096*time.Millisecond)
	require.Equal(t, 1, tb.Advance())
	require.Equal(t, 1, calls)
	owner, ok := tb.Kill(a)
	require.True(t, ok)
	require.Equal(t, 3, owner)
}

// Close hands every remaining owner to OnExpire, once; later calls find
// nothing and hand out nothing.
func TestTableCloseHandsOutOwners(t *testing.T) {
	got := map[tuple.Tuple]int{}
	tb, clk := newTestTable(t, testOptions{Shards: 4, OnExpire: func(tp tuple.Tuple, owner int) {
		_, dup := got[tp]
		require.False(t, dup)
		got[tp] = owner
	}})
	want := map[tuple.Tuple]int{}
	for i := range 100 {
		require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState(), i+1))
		want[flow(i, i%2 == 0)] = i + 1
	}
	require.NoError(t, tb.Close())
	require.Equal(t, want, got)
	require.Zero(t, tb.Len())
	require.Zero(t, tb.Stats().Timers)
	require.Zero(t, tb.Stats().Expired, "Close is not expiry")
	require.ErrorIs(t, tb.Close(), ErrClosed)
	_, ok := tb.Kill(flow(1, false))
	require.False(t, ok)
	clk.Advance(time.Hour)
	require.Zero(t, tb.Advance())
	require.Len(t, got, 100, "nothing more after Close")
}

// A zero-size owner costs nothing: its slab is never allocated. A
// pointer owner takes a chunk of 256 pointers per chunk of slots.
func TestTableOwnerSlabs(t *testing.T) {
	clk := new(ManualClock)
	none, err := NewTable(TableOptions[struct{}]{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer none.Close()
	ptr, err := NewTable(TableOptions[*int]{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer ptr.Close()
	x := new(int)
	for i := range 1000 {
		require.NoError(t, none.Enter(flow(i, false), twState(), struct{}{}))
		require.NoError(t, ptr.Enter(flow(i, false), twState(), x))
	}
	require.Empty(t, none.owners[0].chunks)
	require.Len(t, ptr.owners[0].chunks, len(*ptr.shards[0].chunks.Load()))
	got, ok := ptr.Kill(flow(5, false))
	require.True(t, ok)
	require.Same(t, x, got)
	require.Nil(t, ptr.owners[0].chunks[0][ptr.shards[0].free[len(ptr.shards[0].free)-1]],
		"a handed-out owner's place is cleared")
}

// All yields every entry once with its state, holding no lock while it
// yields: yield may change the table (here it kills what it is given),
// and stopping early stops it.
func TestTableAll(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{Shards: 4})
	clk.Set(ruleT0)
	want := map[tuple.Tuple]State{}
	for i := range 300 {
		st := twState()
		st.RcvNxt = uint32(i)
		require.NoError(t, tb.Enter(flow(i, i%3 == 0), st, i))
		want[flow(i, i%3 == 0)] = st
	}
	n := 0
	for range tb.All() {
		if n++; n == 10 {
			break
		}
	}
	require.Equal(t, 10, n)
	got := map[tuple.Tuple]State{}
	for tp, st := range tb.All() {
		_, dup := got[tp]
		require.False(t, dup, "%v yielded twice", tp)
		got[tp] = st
		_, ok := tb.Kill(tp)
		require.True(t, ok)
	}
	require.Equal(t, want, got)
	require.Zero(t, tb.Len())
}

func TestFateString(t *testing.T) {
	require.Equal(t, []string{"kept", "restarted", "time-wait", "removed", "Fate(9)"},
		[]string{FateKept.String(), FateRestarted.String(), FateTimeWait.String(), FateRemoved.String(), Fate(9).String()})
}
