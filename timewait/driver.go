package timewait

import (
	"sync/atomic"
	"time"
)

// driver is what a Wheel and a Table share about time: the clock, read so
// that it never goes back, and, for a SystemClock, the ticker goroutine
// that advances the owner every tick while it has timers pending and exits
// when it has none.
type driver struct {
	clock   Clock
	tick    time.Duration
	manual  bool         // the caller drives Advance
	seen    atomic.Int64 // latest clock reading, ns: a backwards clock is held here
	running atomic.Bool  // the ticker goroutine is alive
	stop    chan struct{}
	// advance fires what is due; pending counts the timers left. The
	// owner sets both before it schedules anything.
	advance func() int
	pending func() int
}

// init sets the clock (nil: the zero SystemClock) and the tick. A
// SystemClock is ticked by the driver; any other clock by the caller.
func (d *driver) init(clock Clock, tick time.Duration, advance, pending func() int) {
	d.clock, d.tick, d.advance, d.pending = clock, tick, advance, pending
	d.stop = make(chan struct{})
	if d.clock == nil {
		d.clock = &SystemClock{}
	}
	if _, sys := d.clock.(*SystemClock); !sys {
		d.manual = true
	}
	d.now()
}

// now reads the clock, in ns, never going back before the latest reading.
func (d *driver) now() int64 {
	t := int64(d.clock.Now())
	for {
		seen := d.seen.Load()
		if t <= seen {
			return seen
		}
		if d.seen.CompareAndSwap(seen, t) {
			return t
		}
	}
}

// ticks converts a clock time to the tick it is due at: rounded up, so a
// timer is never due before its time.
func (d *driver) ticks(at time.Duration) int64 {
	if at <= 0 {
		return 0
	}
	return (int64(at) + int64(d.tick) - 1) / int64(d.tick)
}

// scheduled is called after a timer was scheduled: it starts the ticker of
// a SystemClock owner if it is not running.
func (d *driver) scheduled() {
	if !d.manual && !d.running.Load() && d.running.CompareAndSwap(false, true) {
		go d.run()
	}
}

// close stops the ticker for good.
func (d *driver) close() { close(d.stop) }

// run advances the owner every tick while timers are pending, then exits;
// the next schedule that finds it stopped starts it again.
func (d *driver) run() {
	ticker := time.NewTicker(d.tick)
	defer ticker.Stop()
	for {
		select {
		case <-d.stop:
			d.running.Store(false)
			return
		case <-ticker.C:
		}
		d.advance()
		if d.pending() > 0 {
			continue
		}
		d.running.Store(false)
		// A schedule between the pending check above and the Store saw
		// the ticker running and did not start one: take over if so.
		if d.pending() == 0 || !d.running.CompareAndSwap(false, true) {
			return
		}
	}
}
