package timewait

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socktable/socktable/internal/errs"
	"github.com/socktable/socktable/internal/pshard"
)

// Sentinel errors of this package (the same values as socktable's).
var (
	// ErrClosed: a call after Close.
	ErrClosed = errs.ErrClosed
	// ErrCapacity: bad WheelOptions (a negative or oversized field).
	ErrCapacity = errs.ErrCapacity
	// ErrWheelFull: a shard of the wheel holds its maximum of 2^24 timers.
	ErrWheelFull = errs.ErrWheelFull
)

// Timer identifies a scheduled timer: its shard, its node and the node's
// generation, packed in a word. It stays valid until the timer fires or is
// cancelled; after that Cancel and Reschedule report false for it (until
// its node has been reused 2^31 times). The zero Timer is never issued.
type Timer uint64

func makeTimer(shard uint8, i int32, gen uint32) Timer {
	return Timer(uint64(gen)<<32 | uint64(shard)<<24 | uint64(i)&(maxNodes-1) | 1<<31)
}

func (t Timer) shard() int   { return int(t >> 24 & 0x7f) }
func (t Timer) index() int32 { return int32(t & (maxNodes - 1)) }
func (t Timer) gen() uint32  { return uint32(t >> 32) }

// Expired is a timer that fired: its handle (no longer valid) and the value
// it was scheduled with.
type Expired struct {
	Timer Timer
	Data  uint64
}

// WheelOptions configures a Wheel.
type WheelOptions struct {
	// Tick is the finest granularity; 0 means 1 ms. Timers are kept in
	// ticks: level k fires within 8^k ticks after the due time.
	Tick time.Duration
	// Levels is the number of levels, 1 to 10; 0 means 9, as in Linux
	// (with 1 ms ticks, 12 days before a timer must wait in the top level
	// and be placed again).
	Levels int
	// Shards is the number of independent wheels timers are spread over, by
	// the P (core) that schedules them, so that concurrent Schedule and
	// Cancel rarely share a lock or a line; 0 means one per GOMAXPROCS at
	// creation. At most 128.
	Shards int
	// Clock is the time source, the stack's one Clock; nil means the zero
	// SystemClock. On a SystemClock the wheel runs its own ticker
	// goroutine while timers are pending and stops it when none are; with
	// any other clock the caller calls Advance.
	Clock Clock
	// Expire receives the timers that came due, in batches (of one shard,
	// at most 512 timers each), outside the shards' locks: it may schedule,
	// cancel or reschedule timers. The batch slice is reused after Expire
	// returns; it must not be kept. It must not call Advance (Advance
	// holds the shard's expiry lock while it runs). Required.
	Expire func(batch []Expired)
}

// Wheel is a hierarchical timer wheel (see the package doc): schedule,
// cancel and reschedule in O(1), expiry in batches handed to one handler.
//
// Concurrency: every method is safe for concurrent use. Schedule, Cancel
// and Reschedule are linearizable; they lock one shard for a few loads and
// stores (they may block briefly behind another caller on the same shard,
// never on a handler) and allocate nothing once the shard's slab has grown
// to the most timers pending at once. Advance fires each shard's due
// timers in order of shards, in batches of at most 512, each taken off the
// wheel under the shard's lock (which is released while Expire runs, so a
// burst of expiries does not stall schedules); calls to Advance on the
// same shard are serialized. So on a one-shard wheel an Advance that finds
// at most 512 timers due is linearizable too: it takes exactly the timers
// due at the clock's reading, as of one instant; otherwise it is a
// sequence of such steps, a batch at a time. A timer never fires before
// its due time on the wheel's clock, and at most one granularity of its
// level after the first Advance that reaches it.
//
// Memory: 32 bytes per timer in each shard's slab (its bucket links, due
// tick, value and generation in one node), grown 256 timers at a time and
// never shrunk (its size is that of the most timers ever pending in the
// shard), plus about 3 KiB per shard.
type Wheel struct {
	shards  []shard
	shardOf [pshard.Max]uint8 // by pshard.Current: its number modulo len(shards), without a division
	drv     driver
	expire  func([]Expired)
	closed  atomic.Bool
	closeMu sync.Mutex
}

// NewWheel returns an empty wheel. It returns ErrCapacity for a negative
// Tick, Levels outside 0..10, Shards outside 0..128, or no Expire.
func NewWheel(opts WheelOptions) (*Wheel, error) {
	if opts.Tick < 0 || opts.Levels < 0 || opts.Levels > maxLevels ||
		opts.Shards < 0 || opts.Shards > 128 || opts.Expire == nil {
		return nil, ErrCapacity
	}
	if opts.Tick == 0 {
		opts.Tick = time.Millisecond
	}
	if opts.Levels == 0 {
		opts.Levels = 9
	}
	if opts.Shards == 0 {
		opts.Shards = min(4*runtime.GOMAXPROCS(0), 128)
	}
	w := &Wheel{shards: make([]shard, opts.Shards), expire: opts.Expire}
	for p := range w.shardOf {
		w.shardOf[p] = uint8(p % opts.Shards)
	}
	w.drv.init(opts.Clock, opts.Tick, w.Advance, w.Len)
	now, _ := w.drv.nowTicks()
	for i := range w.shards {
		w.shards[i].init(opts.Levels, now)
	}
	return w, nil
}

// shardHere returns the shard of the calling P: timers scheduled on one
// core stay in that core's shard (and are cancelled there, wherever the
// canceller runs), so cores scheduling at once do not pull each other's
// shard lines, as they would if the shard were chosen by the timer's data:
// then every shard's lock and buckets would be written by every core in
// turn.
func (w *Wheel) shardHere() (*shard, uint8) {
	i := w.shardOf[pshard.Current()%pshard.Max]
	return &w.shards[i], i
}

// Schedule starts a timer due at time at on the wheel's clock, carrying
// data (the handler's only clue: an index, a handle), and returns its
// handle. A time already past is due at once: the next Advance fires it
// if the clock has moved on since the last Advance (if not, the first
// Advance after the clock moves does). It returns ErrClosed
// after Close and ErrWheelFull if the calling P's shard holds 2^24 timers.
func (w *Wheel) Schedule(at time.Duration, data uint64) (Timer, error) {
	return w.schedule(w.drv.ticks(at), -1, data)
}

// ScheduleAfter is Schedule at d after the clock's current time (or after
// its latest reading, if it went back); a time past the clock's range
// saturates at its end.
func (w *Wheel) ScheduleAfter(d time.Duration, data uint64) (Timer, error) {
	now, ns := w.drv.nowTicks()
	return w.schedule(w.drv.ticks(after(ns, d)), now, data)
}

// schedule starts a timer due at tick due; now is the current tick, or
// -1 if the caller has not read the clock (it is needed only if the shard
// is empty: see wheelCore.schedule).
func (w *Wheel) schedule(due, now int64, data uint64) (Timer, error) {
	s, id := w.shardHere()
	s.mu.Lock()
	if w.closed.Load() { // checked under the lock: Close clears each shard under it
		s.mu.Unlock()
		return 0, ErrClosed
	}
	i, n := s.alloc()
	if n == nil {
		s.mu.Unlock()
		return 0, ErrWheelFull
	}
	if s.core.pendingCount() == 0 {
		if now < 0 {
			now, _ = w.drv.nowTicks()
		}
		s.core.catchUp(now)
	}
	n.setData(data)
	s.core.add(i, &n.link, due)
	t := makeTimer(id, i, n.gen)
	s.mu.Unlock()
	w.drv.scheduled()
	return t, nil
}

// lookup returns t's shard, locked, and its node, if t is pending (the
// caller unlocks), or nil.
func (w *Wheel) lookup(t Timer) (*shard, *timerNode) {
	id := t.shard()
	if t == 0 || id >= len(w.shards) {
		return nil, nil
	}
	s := &w.shards[id]
	s.mu.Lock()
	n := s.pending(t.index(), t.gen())
	if n == nil {
		s.mu.Unlock()
		return nil, nil
	}
	return s, n
}

// Cancel stops t and reports whether it was pending (false if it fired,
// was cancelled, or is not a timer of this wheel).
func (w *Wheel) Cancel(t Timer) bool {
	s, n := w.lookup(t)
	if n == nil {
		return false
	}
	s.core.remove(&n.link)
	s.release(t.index(), n)
	s.mu.Unlock()
	return true
}

// Reschedule moves pending timer t to time at, keeping its handle and
// data, and reports whether t was pending (if not, nothing is scheduled).
func (w *Wheel) Reschedule(t Timer, at time.Duration) bool {
	due := w.drv.ticks(at)
	s, n := w.lookup(t)
	if n == nil {
		return false
	}
	s.core.unlink(&n.link)
	s.core.place(t.index(), &n.link, due)
	s.mu.Unlock()
	return true
}

// Advance fires every timer due at the clock's current time: each shard's
// due timers go to Expire in batches, after the shard's lock is released.
// It returns the number fired. With a SystemClock the wheel's own ticker
// calls it every tick while timers are pending.
func (w *Wheel) Advance() int {
	if w.closed.Load() {
		return 0
	}
	to, _ := w.drv.nowTicks()
	fired := 0
	for id := range w.shards {
		s := &w.shards[id]
		s.advanceMu.Lock()
		for more := true; more; {
			var batch []Expired
			s.mu.Lock()
			batch, more = s.collect(to, uint8(id))
			s.mu.Unlock()
			if len(batch) > 0 {
				fired += len(batch)
				w.expire(batch)
			}
			s.batch = batch[:0] // keep the capacity: no allocation once grown
		}
		s.advanceMu.Unlock()
	}
	return fired
}

// Clock returns the wheel's clock (the zero SystemClock if
// WheelOptions.Clock was nil), on which Schedule's times are read.
func (w *Wheel) Clock() Clock { return w.drv.clock }

// Len returns the number of pending timers. It sums the shards' counts,
// locking each shard in turn (it may block briefly, as Schedule may; the
// counts are plain fields under the shards' locks, so that Schedule and
// Cancel do no atomic update besides the lock's); under concurrent calls
// each shard is read at a different moment.
func (w *Wheel) Len() int {
	n := 0
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		n += s.core.pendingCount()
		s.mu.Unlock()
	}
	return n
}

// Close stops the wheel: pending timers never fire, the ticker goroutine
// exits, and every later call returns ErrClosed (Advance fires nothing;
// Cancel and Reschedule report false). A second Close returns ErrClosed.
func (w *Wheel) Close() error {
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	if w.closed.Swap(true) {
		return ErrClosed
	}
	w.drv.close()
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		for j := range s.core.pending() {
			s.release(j, s.core.node(j))
		}
		s.core.reset(false)
		s.mu.Unlock()
	}
	return nil
}
