//go:build !race

package timewait

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// process and reusable allocate nothing, on every path: the table calls
// them per packet and per connect.
func TestRulesAllocNothing(t *testing.T) {
	rules := DefaultRules()
	segs := []tuple.Segment{
		seg(tuple.ACK, 1000, 0, 150),           // bare ACK: restart
		seg(tuple.FIN|tuple.ACK, 999, 0, 150),  // retransmitted FIN: re-ACK
		seg(tuple.SYN, 2000, 0, noTS),          // new SYN
		seg(tuple.ACK, 1000, 0, 50),            // PAWS reject
		seg(tuple.RST, 1000, 0, noTS),          // kill
		seg(tuple.FIN|tuple.ACK, 1000, 0, 150), // FIN_WAIT2 -> TIME_WAIT
	}
	now := ruleT0
	var sink uint32
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range segs {
			st := twState()
			if i == len(segs)-1 {
				st = fw2State()
			}
			r := newRecord(&st, ruleT0)
			now += ruleTick
			_, _, isn := r.process(&segs[i], now, &rules)
			_, ws := r.reusable(ruleTuple, now, ReuseOn, false)
			sink += isn + ws + r.ack().seq
		}
	})
	require.Zero(t, allocs)
	require.NotZero(t, sink)
}
