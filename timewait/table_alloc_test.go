//go:build !race

package timewait

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// Enter, Process, Lookup, Reusable, Kill and expiry allocate nothing once
// the slabs, indexes and the wheel have grown to the table's size.
func TestTableAllocatesNothing(t *testing.T) {
	tb, clk := newTestTable(t, Options{Shards: 4})
	const n = 4000
	for i := range n { // grow everything, then empty it
		require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState()))
	}
	for i := range n {
		tb.Kill(flow(i, i%2 == 0))
	}
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		i = (i + 1) % n
		tu := flow(i, i%2 == 0)
		_ = tb.Enter(tu, twState())
		ack := seg(tuple.ACK, 1000, 0, 200)
		tb.Process(tu, &ack)
		tb.Lookup(tu)
		tb.Reusable(tu, true)
		tb.Kill(tu)
	}), "enter, process, lookup, reusable, kill")
	require.Zero(t, testing.AllocsPerRun(20, func() {
		for j := range 100 {
			_ = tb.Enter(flow(j, false), twState())
		}
		clk.Advance(2 * TimeWaitLen)
		tb.Advance()
	}), "expiry")
}
