package timewait

import (
	"sync/atomic"
	"time"
)

// Clock is the library's one time source: monotonic time since an
// arbitrary origin, as a time.Duration. A stack makes one and passes it to
// every part that keeps time (TableOptions.Clock, WheelOptions.Clock), so
// that the times they take and hand back (State.TSRecentStamp,
// Reuse.TSRecentStamp, a Wheel's due times) are on one time line.
//
// A Clock may jump backwards (a manual one set back, a misbehaving
// source): a wheel or table then fires nothing until the clock passes the
// latest time it had seen, and delays computed from it (ScheduleAfter, an
// entry's lifetime) start from that latest time, so no timer fires early.
//
// Now must be safe for concurrent use and must not call back into the
// wheel or table that reads it.
type Clock interface {
	Now() time.Duration
}

// processStart is the origin of the zero SystemClock.
var processStart = time.Now()

// SystemClock is the monotonic clock of this process. Its zero value is
// ready to use: it counts from a process-wide origin (when the package was
// initialised), so every zero SystemClock, and every table or wheel made
// with a nil Clock, reads the same time. NewSystemClock returns one that
// counts from its creation instead. A table or wheel on a SystemClock runs
// its own ticker goroutine while it has timers pending.
type SystemClock struct{ start time.Time }

// NewSystemClock returns a clock whose Now starts at 0.
func NewSystemClock() *SystemClock { return &SystemClock{start: time.Now()} }

// Now returns the time since the clock's origin, from the monotonic clock
// (a nil *SystemClock reads as the zero one). It is safe for concurrent use and allocates nothing.
func (c *SystemClock) Now() time.Duration {
	if c == nil || c.start.IsZero() {
		return time.Since(processStart)
	}
	return time.Since(c.start)
}

// ManualClock is a clock for tests and simulations: it moves only when
// told. Its zero value reads 0. It is safe for concurrent use; Now is one
// atomic load, so cores reading it share no written line. A table or wheel
// on a ManualClock (or any Clock other than a SystemClock) fires timers
// only when its Advance is called.
type ManualClock struct {
	now atomic.Int64
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Duration { return time.Duration(c.now.Load()) }

// Advance moves the clock forward by d (backwards if d is negative) and
// returns the new time. The wheels reading it fire only when their
// Advance is called.
func (c *ManualClock) Advance(d time.Duration) time.Duration {
	return time.Duration(c.now.Add(int64(d)))
}

// Set sets the clock to t, which may be earlier than its current time.
func (c *ManualClock) Set(t time.Duration) { c.now.Store(int64(t)) }
