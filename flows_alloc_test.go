//go:build !race

package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// ClaimFlow is on connect()'s path, once per port tried: a free tuple, an
// established one and a TIME_WAIT one that may not be taken over all cost
// no allocation.
func TestFlowsClaimFlowAllocatesNothing(t *testing.T) {
	s := newStack(t, stackOptions{withFlows: true})
	res, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.NoError(t, err)
	closeIntoTimeWait(t, s, res) // ReuseOff: never taken over from an ephemeral port
	live := tuple.Tuple{Local: tuple.Endpoint{Addr: clientAddr, Port: 5000}, Remote: serverEP}
	require.NoError(t, s.established.Insert(live, &conn{1}))
	free := tuple.Tuple{Local: tuple.Endpoint{Addr: clientAddr, Port: 5001}, Remote: serverEP}
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		s.flows.ClaimFlow(free, false)
		s.flows.ClaimFlow(live, false)
		s.flows.ClaimFlow(res.Tuple, false)
	}))
	require.Equal(t, table.FlowInUse, s.flows.ClaimFlow(res.Tuple, false).Verdict)
}
