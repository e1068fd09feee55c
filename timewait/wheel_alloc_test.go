//go:build !race

package timewait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Schedule, Cancel, Reschedule and Advance allocate nothing once the
// slab and the batch buffers have grown.
func TestWheelAllocatesNothing(t *testing.T) {
	clock := &ManualClock{}
	w, err := NewWheel(WheelOptions{Clock: clock, Shards: 2, Expire: func([]Expired) {}})
	require.NoError(t, err)
	defer w.Close()
	for i := range 10000 { // grow the slabs and the batch buffers
		_, err := w.ScheduleAfter(time.Duration(i%100)*time.Millisecond, uint64(i))
		require.NoError(t, err)
	}
	clock.Advance(time.Second)
	w.Advance()
	var data uint64
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		data++
		tm, _ := w.ScheduleAfter(time.Minute, data)
		w.Reschedule(tm, 2*time.Minute)
		w.Cancel(tm)
	}), "schedule, reschedule, cancel")
	require.Zero(t, testing.AllocsPerRun(100, func() {
		for i := range 50 {
			data++
			w.ScheduleAfter(time.Duration(i%3)*time.Millisecond, data)
		}
		clock.Advance(5 * time.Millisecond)
		w.Advance()
	}), "expiry")
}
