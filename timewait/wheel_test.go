package timewait

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// recorder collects what a wheel fires, with the clock's time at firing.
type recorder struct {
	mu    sync.Mutex
	clock *ManualClock
	fired map[uint64]time.Duration // data -> when
	twice []uint64
}

func (r *recorder) expire(batch []Expired) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	for _, e := range batch {
		if _, dup := r.fired[e.Data]; dup {
			r.twice = append(r.twice, e.Data)
		}
		r.fired[e.Data] = now
	}
}

func (r *recorder) when(data uint64) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.fired[data]
	return at, ok
}

func newManualWheel(t testing.TB, opts WheelOptions) (*Wheel, *ManualClock, *recorder) {
	clock := &ManualClock{}
	rec := &recorder{clock: clock, fired: map[uint64]time.Duration{}}
	opts.Clock, opts.Expire = clock, rec.expire
	w, err := NewWheel(opts)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return w, clock, rec
}

func TestWheelRejectsBadOptions(t *testing.T) {
	expire := func([]Expired) {}
	for _, o := range []WheelOptions{
		{Tick: -1, Expire: expire},
		{Levels: -1, Expire: expire},
		{Levels: 11, Expire: expire},
		{Shards: -1, Expire: expire},
		{Shards: 129, Expire: expire},
		{},
	} {
		_, err := NewWheel(o)
		require.ErrorIs(t, err, ErrCapacity, "%+v", o)
	}
}

// A level-0 timer fires exactly at its tick, not before.
func TestWheelFiresOnTime(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 2})
	_, err := w.ScheduleAfter(10*time.Millisecond, 1)
	require.NoError(t, err)
	_, err = w.Schedule(5*time.Millisecond+1, 2) // rounds up to tick 6
	require.NoError(t, err)
	require.Equal(t, 2, w.Len())
	for ms := 1; ms <= 12; ms++ {
		clock.Advance(time.Millisecond)
		w.Advance()
	}
	at, ok := rec.when(1)
	require.True(t, ok)
	require.Equal(t, 10*time.Millisecond, at)
	at, ok = rec.when(2)
	require.True(t, ok)
	require.Equal(t, 6*time.Millisecond, at, "due mid-tick: fires at the next tick, never before")
	require.Zero(t, w.Len())
	require.Empty(t, rec.twice)
}

// For every level: a timer is not fired a tick before its due time, and is
// fired by its due time plus the level's granularity less one tick (the
// bound the package doc states).
func TestWheelLatenessPerLevel(t *testing.T) {
	for k := range 9 {
		g := int64(1) << (3 * k)
		for _, d := range []int64{62 * g, 62*g - g/2, 8*g + 3, 62*g/8 + 1} {
			if d < 1 {
				continue
			}
			t.Run(fmt.Sprintf("level=%d/d=%d", k, d), func(t *testing.T) {
				w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1})
				start := time.Duration(12345) * time.Millisecond // an unaligned clock
				clock.Set(start)
				w.Advance()
				due := start + time.Duration(d)*time.Millisecond
				_, err := w.Schedule(due, 7)
				require.NoError(t, err)
				clock.Set(due - time.Millisecond)
				w.Advance()
				_, fired := rec.when(7)
				require.False(t, fired, "fired early")
				clock.Set(due + time.Duration(g-1)*time.Millisecond)
				w.Advance()
				at, fired := rec.when(7)
				require.True(t, fired, "not fired within the level's granularity")
				require.GreaterOrEqual(t, at, due)
			})
		}
	}
}

// A clock set back fires nothing until it passes its latest reading, and
// delays scheduled meanwhile start from that reading.
func TestWheelClockBackwards(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1})
	clock.Set(time.Second)
	w.Advance()
	_, err := w.Schedule(time.Second+5*time.Millisecond, 1)
	require.NoError(t, err)
	clock.Set(0) // back by a second
	_, err = w.ScheduleAfter(3*time.Millisecond, 2)
	require.NoError(t, err)
	w.Advance()
	clock.Set(time.Second + 2*time.Millisecond)
	w.Advance()
	_, fired := rec.when(2)
	require.False(t, fired, "a delay after a backwards jump counts from the latest reading")
	clock.Set(time.Second + 3*time.Millisecond)
	w.Advance()
	at, fired := rec.when(2)
	require.True(t, fired)
	require.Equal(t, time.Second+3*time.Millisecond, at)
	_, fired = rec.when(1)
	require.False(t, fired)
	clock.Set(time.Second + 5*time.Millisecond)
	w.Advance()
	_, fired = rec.when(1)
	require.True(t, fired)
}

// A timer beyond the top level's reach waits and is placed again: it
// never fires early, and fires within the top level's granularity.
func TestWheelBeyondReach(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1, Levels: 2}) // reach 496 ticks
	due := 10_000 * time.Millisecond
	_, err := w.Schedule(due, 1)
	require.NoError(t, err)
	for now := time.Duration(0); now < due; now += 7 * time.Millisecond {
		clock.Set(now)
		w.Advance()
		_, fired := rec.when(1)
		require.False(t, fired, "fired at %v, due %v", now, due)
	}
	clock.Set(due + 7*time.Millisecond) // level 1 granularity: 8 ticks
	w.Advance()
	at, fired := rec.when(1)
	require.True(t, fired)
	require.GreaterOrEqual(t, at, due)
	require.Equal(t, 0, w.Len())
}

// One Advance over a long jump fires everything due, in one batch per
// shard, without visiting every tick.
func TestWheelLongJump(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 3})
	for i := range 1000 {
		_, err := w.Schedule(time.Duration(i)*time.Hour/10, uint64(i))
		require.NoError(t, err)
	}
	clock.Set(200 * time.Hour)
	require.Equal(t, 1000, w.Advance())
	require.Len(t, rec.fired, 1000)
	require.Empty(t, rec.twice)
}

func TestWheelCancelAndReschedule(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 2})
	a, err := w.ScheduleAfter(5*time.Millisecond, 1)
	require.NoError(t, err)
	b, err := w.ScheduleAfter(5*time.Millisecond, 2)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.True(t, w.Cancel(a))
	require.False(t, w.Cancel(a), "cancelled twice")
	require.False(t, w.Reschedule(a, time.Second), "rescheduling a cancelled timer")
	require.True(t, w.Reschedule(b, 50*time.Millisecond))
	require.Equal(t, 1, w.Len())
	clock.Set(20 * time.Millisecond)
	w.Advance()
	_, fired := rec.when(2)
	require.False(t, fired, "rescheduled later")
	clock.Set(50 * time.Millisecond)
	w.Advance()
	_, fired = rec.when(2)
	require.True(t, fired)
	_, fired = rec.when(1)
	require.False(t, fired, "cancelled")
	require.False(t, w.Cancel(b), "already fired")
	require.False(t, w.Cancel(0), "the zero Timer")
	require.False(t, w.Cancel(Timer(1<<62|127<<24)), "a shard this wheel lacks")
	// A handle whose node was reused by a later timer does not touch it.
	c, err := w.ScheduleAfter(time.Millisecond, 3)
	require.NoError(t, err)
	require.False(t, w.Cancel(b))
	require.True(t, w.Cancel(c))
}

func TestWheelClose(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{})
	tm, err := w.ScheduleAfter(time.Millisecond, 1)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.Close(), ErrClosed)
	require.Zero(t, w.Len())
	_, err = w.ScheduleAfter(time.Millisecond, 2)
	require.ErrorIs(t, err, ErrClosed)
	require.False(t, w.Cancel(tm))
	clock.Set(time.Second)
	require.Zero(t, w.Advance())
	require.Empty(t, rec.fired)
}

// The handler may schedule and cancel: it runs outside the shard's lock.
func TestWheelHandlerReschedules(t *testing.T) {
	clock := &ManualClock{}
	var w *Wheel
	fired := 0
	w, err := NewWheel(WheelOptions{Shards: 1, Clock: clock, Expire: func(batch []Expired) {
		for _, e := range batch {
			fired++
			if e.Data < 3 {
				_, err := w.ScheduleAfter(time.Millisecond, e.Data+1)
				require.NoError(t, err)
			}
		}
	}})
	require.NoError(t, err)
	_, err = w.ScheduleAfter(time.Millisecond, 0)
	require.NoError(t, err)
	for range 10 {
		clock.Advance(time.Millisecond)
		w.Advance()
	}
	require.Equal(t, 4, fired)
}

// With a SystemClock the wheel runs its own ticker while timers are
// pending, and stops it once none are.
func TestWheelSystemClockTicker(t *testing.T) {
	done := make(chan uint64, 1)
	w, err := NewWheel(WheelOptions{Shards: 1, Expire: func(batch []Expired) {
		for _, e := range batch {
			done <- e.Data
		}
	}})
	require.NoError(t, err)
	defer w.Close()
	require.False(t, w.drv.running.Load(), "no ticker while idle")
	_, err = w.ScheduleAfter(2*time.Millisecond, 42)
	require.NoError(t, err)
	select {
	case v := <-done:
		require.Equal(t, uint64(42), v)
	case <-time.After(10 * time.Second):
		t.Fatal("the ticker never fired the timer")
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.drv.running.Load() { // the ticker exits at its next tick
		require.True(t, time.Now().Before(deadline), "the ticker did not stop when idle")
		runtime.Gosched()
	}
}

// A burst of timers due at one tick is handed over in batches of at most
// batchLimit, with the shard's lock released in between: the handler can
// schedule into the same shard (it would deadlock otherwise).
func TestWheelBatchesBursts(t *testing.T) {
	clock := &ManualClock{}
	var w *Wheel
	sizes, seen := []int{}, map[uint64]bool{}
	w, err := NewWheel(WheelOptions{Shards: 1, Clock: clock, Expire: func(batch []Expired) {
		sizes = append(sizes, len(batch))
		for _, e := range batch {
			require.False(t, seen[e.Data], "fired twice")
			seen[e.Data] = true
		}
		_, err := w.ScheduleAfter(time.Hour, 1<<40)
		require.NoError(t, err)
	}})
	require.NoError(t, err)
	defer w.Close()
	const n = 2000
	for i := range n {
		_, err := w.Schedule(time.Minute, uint64(i))
		require.NoError(t, err)
	}
	clock.Set(2 * time.Minute)
	require.Equal(t, n, w.Advance())
	require.Len(t, seen, n)
	require.Equal(t, []int{batchLimit, batchLimit, batchLimit, n - 3*batchLimit}, sizes)
	require.Equal(t, len(sizes), w.Len(), "the handler's own timers")
}

// A pending timer costs 32 bytes of slab: its 16-byte link and its
// payload in one node, half a cache line, in chunks that are exact size
// classes (no rounding up); a Table's timer is the bare link.
func TestWheelNodeSize(t *testing.T) {
	require.Equal(t, uintptr(32), unsafe.Sizeof(timerNode{}))
	require.Equal(t, uintptr(16), unsafe.Sizeof(link{}))
	require.Equal(t, 8192, int(unsafe.Sizeof([linkChunk]timerNode{})))
	require.Equal(t, 4096, int(unsafe.Sizeof([linkChunk]link{})))
}

// A timer scheduled on a shard that has been idle (no timers, no Advance)
// for an hour is placed by its distance from now, not from the shard's
// last Advance: a 60 ms timer fires at 60 ms, not in a level an hour
// coarse. (The SystemClock ticker stops while the wheel is empty, so this
// is the normal case after a quiet spell.)
func TestWheelIdleShardCatchesUp(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1})
	clock.Set(time.Hour)
	_, err := w.ScheduleAfter(60*time.Millisecond, 1)
	require.NoError(t, err)
	clock.Advance(59 * time.Millisecond)
	require.Zero(t, w.Advance())
	clock.Advance(time.Millisecond)
	require.Equal(t, 1, w.Advance())
	at, ok := rec.when(1)
	require.True(t, ok)
	require.Equal(t, time.Hour+60*time.Millisecond, at)
}

// Times near the end of the clock's range do not wrap around into the
// past: a timer at (or after) the largest time never fires early, with a
// 1 ms tick (where rounding the time up to ticks could overflow) and with
// a 1 ns tick (where rounding the tick up to a level's granularity could).
func TestWheelFarFutureNeverEarly(t *testing.T) {
	for _, tick := range []time.Duration{time.Millisecond, time.Nanosecond} {
		t.Run(fmt.Sprintf("tick=%v", tick), func(t *testing.T) {
			w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1, Tick: tick})
			clock.Set(time.Second)
			for i, at := range []time.Duration{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - time.Millisecond/2} {
				_, err := w.Schedule(at, uint64(i))
				require.NoError(t, err)
			}
			_, err := w.ScheduleAfter(math.MaxInt64, 10) // past the end: saturates
			require.NoError(t, err)
			// (A timer beyond the top level's reach is placed again once per
			// reach, about a second of 1 ns ticks: jumps stay within hours.)
			for _, now := range []time.Duration{time.Second + tick, 2 * time.Second, time.Hour, 3 * time.Hour} {
				clock.Set(now)
				w.Advance()
				require.Empty(t, rec.fired, "fired early, at %v", now)
			}
			require.Equal(t, 4, w.Len())
		})
	}
}

// A timer already due when it is scheduled fires at the next Advance,
// whether or not its shard was empty: an empty shard catches its clock up
// to the tick before the clock's, not to the clock's, which the next
// Advance has yet to process.
func TestWheelPastTimerFiresAtNextAdvance(t *testing.T) {
	for _, empty := range []bool{true, false} {
		t.Run(fmt.Sprintf("empty=%v", empty), func(t *testing.T) {
			w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1})
			clock.Set(10 * time.Millisecond)
			w.Advance()
			if !empty {
				_, err := w.ScheduleAfter(time.Hour, 1)
				require.NoError(t, err)
			}
			clock.Set(15 * time.Millisecond) // no Advance yet at 15
			_, err := w.Schedule(12*time.Millisecond, 2)
			require.NoError(t, err)
			require.Equal(t, 1, w.Advance(), "due at 12, advanced to 15")
			at, ok := rec.when(2)
			require.True(t, ok)
			require.Equal(t, 15*time.Millisecond, at)
		})
	}
}

// Cancel, then a schedule that reuses the cancelled timer's node, then a
// reschedule of the new timer, then expiry: only the new timer fires,
// once, at its new time, and the old handle never reaches it.
func TestWheelCancelReuseRescheduleExpire(t *testing.T) {
	w, clock, rec := newManualWheel(t, WheelOptions{Shards: 1})
	a, err := w.ScheduleAfter(5*time.Millisecond, 1)
	require.NoError(t, err)
	require.True(t, w.Cancel(a))
	b, err := w.ScheduleAfter(5*time.Millisecond, 2) // the free list hands out a's node
	require.NoError(t, err)
	require.Equal(t, a.index(), b.index(), "the node is reused")
	require.NotEqual(t, a, b)
	require.False(t, w.Reschedule(a, time.Millisecond), "a stale handle moves nothing")
	require.True(t, w.Reschedule(b, 9*time.Millisecond))
	require.True(t, w.Reschedule(b, 7*time.Millisecond), "twice, earlier")
	for ms := 1; ms <= 20; ms++ {
		clock.Set(time.Duration(ms) * time.Millisecond)
		w.Advance()
	}
	_, fired := rec.when(1)
	require.False(t, fired, "cancelled")
	at, fired := rec.when(2)
	require.True(t, fired)
	require.Equal(t, 7*time.Millisecond, at)
	require.Empty(t, rec.twice)
	require.False(t, w.Cancel(a))
	require.False(t, w.Cancel(b), "fired")
	require.Zero(t, w.Len())
}
