package timewait

import (
	"sync/atomic"
	"time"
)

// Clock is a wheel's time source: monotonic time since an arbitrary
// origin. A Clock may jump backwards (a manual one set back, a
// misbehaving source): the wheel then fires nothing until the clock passes
// the latest time it had seen, and delays computed from it (ScheduleAfter)
// start from that latest time, so no timer fires early.
type Clock interface {
	Now() time.Duration
}

// SystemClock is the monotonic clock of this process: time since the
// clock was made. Its zero value is not ready; use NewSystemClock.
type SystemClock struct{ start time.Time }

// NewSystemClock returns a clock whose Now starts at 0.
func NewSystemClock() *SystemClock { return &SystemClock{start: time.Now()} }

// Now returns the time since NewSystemClock, from the monotonic clock.
func (c *SystemClock) Now() time.Duration { return time.Since(c.start) }

// ManualClock is a clock for tests and simulations: it moves only when
// told. It is safe for concurrent use; Now is one atomic load, so cores
// reading it share no written line.
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
