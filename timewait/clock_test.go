package timewait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The zero SystemClock is ready to use, as the zero ManualClock is: it
// counts from the process-wide origin, so two zero clocks (and a nil
// *SystemClock) read the same time line, near 0 rather than at the zero
// time.Time's distance.
func TestSystemClockZeroValue(t *testing.T) {
	var a, b SystemClock
	var nilClock *SystemClock
	t0 := a.Now()
	require.GreaterOrEqual(t, t0, time.Duration(0))
	require.Less(t, t0, 24*time.Hour, "counts from the process's start")
	t1 := b.Now()
	require.GreaterOrEqual(t, t1, t0, "two zero clocks share one origin")
	require.GreaterOrEqual(t, nilClock.Now(), t1)
	require.Less(t, NewSystemClock().Now(), a.Now()+time.Second, "NewSystemClock counts from its creation")
}

// A table or wheel with no Clock runs on the zero SystemClock, and Clock
// returns it; one given a clock returns that clock.
func TestClockAccessors(t *testing.T) {
	tb, err := NewTable(TableOptions[struct{}]{})
	require.NoError(t, err)
	defer tb.Close()
	require.Equal(t, &SystemClock{}, tb.Clock())
	w, err := NewWheel(WheelOptions{Expire: func([]Expired) {}})
	require.NoError(t, err)
	defer w.Close()
	require.Equal(t, &SystemClock{}, w.Clock())
	clk := new(ManualClock)
	w2, err := NewWheel(WheelOptions{Clock: clk, Expire: func([]Expired) {}})
	require.NoError(t, err)
	defer w2.Close()
	require.Same(t, clk, w2.Clock())
}

func TestManualClock(t *testing.T) {
	var c ManualClock
	require.Zero(t, c.Now())
	require.Equal(t, 5*time.Millisecond, c.Advance(5*time.Millisecond))
	c.Set(time.Millisecond)
	require.Equal(t, time.Millisecond, c.Now())
}
