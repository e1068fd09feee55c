//go:build !race

package timewait

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// Enter, Process, Lookup, Reusable, TakeOver, Replace, Kill and expiry
// (with its OnExpire hand-outs) allocate nothing once the slabs, indexes
// and the wheel have grown to the table's size, with the plain methods and
// with their …Hashed twins, for a pointer owner and a zero-size one.
func TestTableAllocNoneSteadyState(t *testing.T) {
	t.Run("owner=pointer", func(t *testing.T) { testTableAllocs(t, func(i int) *int { return &ownerInts[i%len(ownerInts)] }) })
	t.Run("owner=struct{}", func(t *testing.T) { testTableAllocs(t, func(int) struct{} { return struct{}{} }) })
}

var ownerInts [64]int

func testTableAllocs[V any](t *testing.T, owner func(int) V) {
	expired := 0
	clk := new(ManualClock)
	tb, err := NewTable(TableOptions[V]{Clock: clk, Shards: 4, OnExpire: func(tuple.Tuple, V) { expired++ }})
	require.NoError(t, err)
	defer tb.Close()
	const n = 4000
	for i := range n { // grow everything, then empty it
		require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState(), owner(i)))
	}
	for i := range n {
		tb.Kill(flow(i, i%2 == 0))
	}
	install := func() error { return nil }
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i = (i + 1) % n
		tu := flow(i, i%2 == 0)
		_ = tb.Enter(tu, twState(), owner(i))
		ack := seg(tuple.ACK, 1000, 0, 200)
		tb.Process(tu, &ack)
		tb.Lookup(tu)
		tb.Reusable(tu, true)
		tb.Kill(tu)
		_ = tb.Enter(tu, twState(), owner(i))
		tb.TakeOver(tu, true)
		_ = tb.Enter(tu, twState(), owner(i))
		_, _, _ = tb.Replace(tu, install)
	}), "enter, process, lookup, reusable, kill, takeover, replace")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i = (i + 1) % n
		tu := flow(i, i%2 == 0)
		h := tb.Hasher().Hash(tu)
		_ = tb.EnterHashed(h, tu, twState(), owner(i))
		ack := seg(tuple.ACK, 1000, 0, 200)
		tb.ProcessHashed(h, tu, &ack)
		tb.LookupHashed(h, tu)
		tb.ReusableHashed(h, tu, true)
		tb.KillHashed(h, tu)
		_ = tb.EnterHashed(h, tu, twState(), owner(i))
		tb.TakeOverHashed(h, tu, true)
		_ = tb.EnterHashed(h, tu, twState(), owner(i))
		_, _, _ = tb.ReplaceHashed(h, tu, install)
	}), "the Hashed twins")
	require.Zero(t, testing.AllocsPerRun(20, func() {
		for j := range 100 {
			_ = tb.Enter(flow(j, false), twState(), owner(j))
		}
		clk.Advance(2 * TimeWaitLen)
		tb.Advance()
	}), "expiry")
	require.Positive(t, expired)
}
