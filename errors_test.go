package socktable_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/rcu"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// TestSentinelsAreShared checks that each re-export is the very same value,
// so errors.Is works whichever package's name the caller uses, and that no
// two conditions share a sentinel.
func TestSentinelsAreShared(t *testing.T) {
	same := [][2]error{
		{socktable.ErrInvalidAddr, tuple.ErrInvalidAddr},
		{socktable.ErrZone, tuple.ErrZone},
		{socktable.ErrPort, tuple.ErrPort},
		{socktable.ErrTruncated, tuple.ErrTruncated},
		{socktable.ErrMalformed, tuple.ErrMalformed},
		{socktable.ErrFragment, tuple.ErrFragment},
		{socktable.ErrProtocol, tuple.ErrProtocol},
		{socktable.ErrCapacity, rcu.ErrCapacity},
		{socktable.ErrCapacity, table.ErrCapacity},
		{socktable.ErrClosed, table.ErrClosed},
		{socktable.ErrExists, table.ErrExists},
		{socktable.ErrTableFull, table.ErrTableFull},
		{socktable.ErrValueType, table.ErrValueType},
		{socktable.ErrPort, table.ErrPort},
		{socktable.ErrInvalidAddr, table.ErrInvalidAddr},
		{socktable.ErrAddrInUse, table.ErrAddrInUse},
		{socktable.ErrAddrNotAvail, table.ErrAddrNotAvail},
		{socktable.ErrInvalid, table.ErrInvalid},
		{socktable.ErrNoPorts, table.ErrNoPorts},
		{socktable.ErrTimeWaitFull, timewait.ErrTimeWaitFull},
		{socktable.ErrWheelFull, timewait.ErrWheelFull},
		{socktable.ErrQueueFull, accept.ErrQueueFull},
		{socktable.ErrEmpty, accept.ErrEmpty},
		{socktable.ErrClosed, timewait.ErrClosed},
		{socktable.ErrCapacity, timewait.ErrCapacity},
		{socktable.ErrExists, timewait.ErrExists},
		{socktable.ErrBacklog, accept.ErrBacklog},
		{socktable.ErrClosed, accept.ErrClosed},
		{socktable.ErrCapacity, accept.ErrCapacity},
		{socktable.ErrInvalid, accept.ErrInvalid},
	}
	for _, p := range same {
		require.Same(t, p[0], p[1])
		require.ErrorIs(t, p[1], p[0])
	}
	all := []error{socktable.ErrInvalidAddr, socktable.ErrZone, socktable.ErrPort, socktable.ErrTruncated,
		socktable.ErrMalformed, socktable.ErrFragment, socktable.ErrProtocol, socktable.ErrCapacity, socktable.ErrClosed,
		socktable.ErrExists, socktable.ErrTableFull, socktable.ErrQueueFull, socktable.ErrWheelFull,
		socktable.ErrTimeWaitFull, socktable.ErrEmpty, socktable.ErrValueType, socktable.ErrAddrInUse,
		socktable.ErrAddrNotAvail, socktable.ErrInvalid, socktable.ErrNoPorts, socktable.ErrBacklog}
	for i, a := range all {
		require.True(t, strings.HasPrefix(a.Error(), "socktable: "), a.Error())
		for _, b := range all[i+1:] {
			require.False(t, errors.Is(a, b), "%v and %v must be distinct", a, b)
		}
	}
}
