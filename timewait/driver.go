package timewait

import (
	"math"
	"math/bits"
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
	perTick divider      // divides by tick
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
	d.perTick = newDivider(uint64(tick))
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
// timer is never due before its time (and without overflow near the end
// of the clock's range).
func (d *driver) ticks(at time.Duration) int64 {
	if at <= 0 {
		return 0
	}
	q, r := d.perTick.divMod(uint64(at))
	if r != 0 {
		q++
	}
	return int64(q)
}

// nowTicks reads the clock (as now does) and returns the tick it is in,
// rounded down, and the reading in ns.
func (d *driver) nowTicks() (tick, ns int64) {
	ns = d.now()
	q, _ := d.perTick.divMod(uint64(ns))
	return int64(q), ns
}

// after returns the clock time d after ns, saturating at the largest
// time rather than wrapping into the past.
func after(ns int64, d time.Duration) time.Duration {
	if d > 0 && ns > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return time.Duration(ns) + d
}

// divider divides by a divisor fixed at creation with a multiplication,
// not a division instruction (which costs tens of cycles, and the wheel
// divides by its tick on every schedule): m is floor((2^64-1)/d), so for a
// dividend below 2^63 the high word of n·m is the quotient or one less
// (n·m/2^64 is at most n/d and more than n/d - n(d+1)/(d·2^64) ≥ n/d - 1),
// and one comparison of the remainder corrects it.
type divider struct {
	d, m uint64
}

func newDivider(d uint64) divider { return divider{d: d, m: math.MaxUint64 / d} }

// divMod returns n/d and n%d, for n < 2^63 (every non-negative int64).
func (v divider) divMod(n uint64) (q, r uint64) {
	q, _ = bits.Mul64(n, v.m)
	r = n - q*v.d
	if r >= v.d {
		q++
		r -= v.d
	}
	return q, r
}

// scheduled is called after a timer was scheduled: it starts the ticker of
// a SystemClock owner if it is not running.
func (d *driver) scheduled() {
	if !d.manual && !d.running.Load() {
		d.start()
	}
}

// start starts the ticker goroutine unless another call just did.
//
//go:noinline
func (d *driver) start() {
	if d.running.CompareAndSwap(false, true) {
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
