package timewait

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// wheelModel runs random Schedule, Cancel, Reschedule and clock moves
// (forward, and sometimes back) against a sorted list of pending timers
// under a manual clock. After every Advance: nothing fired before its due
// tick, nothing fired twice or after being cancelled, and every timer
// whose due tick plus its lateness bound has passed has fired. The bound
// is the package doc's, computed from the distance at scheduling: less
// than 8^k ticks for the first level k with distance ≤ 62·8^k. Handles of
// timers that ended (fired or cancelled) stay stale even after their node
// is reused: Cancel and Reschedule with them report false and change
// nothing.
type wheelModel struct {
	w       *Wheel
	clock   *ManualClock
	pending map[uint64]modelTimer // by data
	next    uint64
	high    int64 // latest clock reading, ms (= ticks)
	top     int64 // granularity of the top level: the lateness of timers past the reach
	fired   []Expired
	ended   []Timer // handles of timers that fired or were cancelled
}

type modelTimer struct {
	handle   Timer
	due      int64 // tick
	deadline int64 // the tick by which it must have fired
}

// timerAt is the model of a timer due at tick due, scheduled when the
// clock's latest reading was high: one already due fires at the next tick;
// any other within its level's lateness bound (capped at top, the
// granularity of a small wheel's top level).
func timerAt(h Timer, due, high, top int64) modelTimer {
	if due <= high {
		return modelTimer{handle: h, due: due, deadline: high + 1}
	}
	return modelTimer{handle: h, due: due, deadline: due + min(lateBound(due-high), top) - 1}
}

func lateBound(distance int64) int64 {
	g := int64(1)
	for distance > 62*g {
		g *= 8
	}
	return g
}

func (m *wheelModel) schedule(t *rapid.T, data uint64, due int64) {
	h, err := m.w.Schedule(time.Duration(due)*time.Millisecond, data)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	m.pending[data] = timerAt(h, due, m.high, m.top)
}

func (m *wheelModel) anyPending(t *rapid.T) (uint64, modelTimer, bool) {
	if len(m.pending) == 0 {
		return 0, modelTimer{}, false
	}
	keys := make([]uint64, 0, len(m.pending))
	for k := range m.pending {
		keys = append(keys, k)
	}
	k := rapid.SampledFrom(sortedU64(keys)).Draw(t, "timer")
	return k, m.pending[k], true
}

func sortedU64(s []uint64) []uint64 {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// distance draws a delay spread over every level (and past the reach of a
// small wheel).
func distance(t *rapid.T, label string) int64 {
	k := rapid.IntRange(0, 6).Draw(t, label+"Level")
	return rapid.Int64Range(0, 70<<(3*k)).Draw(t, label)
}

func (m *wheelModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Schedule": func(t *rapid.T) {
			m.next++
			m.schedule(t, m.next, m.high+distance(t, "delay"))
		},
		"Cancel": func(t *rapid.T) {
			data, mt, ok := m.anyPending(t)
			if !ok {
				t.Skip("nothing pending")
			}
			if !m.w.Cancel(mt.handle) {
				t.Fatalf("Cancel of pending timer %d failed", data)
			}
			if m.w.Cancel(mt.handle) {
				t.Fatalf("second Cancel of %d succeeded", data)
			}
			delete(m.pending, data)
			m.ended = append(m.ended, mt.handle)
		},
		// Cancel a timer, schedule another (which takes the freed node)
		// and move it: the old handle must not reach the new timer.
		"CancelReuse": func(t *rapid.T) {
			data, mt, ok := m.anyPending(t)
			if !ok {
				t.Skip("nothing pending")
			}
			if !m.w.Cancel(mt.handle) {
				t.Fatalf("Cancel of pending timer %d failed", data)
			}
			delete(m.pending, data)
			m.ended = append(m.ended, mt.handle)
			m.next++
			m.schedule(t, m.next, m.high+distance(t, "delay"))
			if m.w.Reschedule(mt.handle, 0) || m.w.Cancel(mt.handle) {
				t.Fatalf("the cancelled handle of %d reached the timer that reused its node", data)
			}
			due := m.high + distance(t, "newDelay")
			if !m.w.Reschedule(m.pending[m.next].handle, time.Duration(due)*time.Millisecond) {
				t.Fatalf("Reschedule of pending timer %d failed", m.next)
			}
			m.pending[m.next] = timerAt(m.pending[m.next].handle, due, m.high, m.top)
		},
		"Stale": func(t *rapid.T) {
			if len(m.ended) == 0 {
				t.Skip("no timer ended yet")
			}
			h := rapid.SampledFrom(m.ended).Draw(t, "stale")
			if m.w.Reschedule(h, time.Duration(m.high)*time.Millisecond) {
				t.Fatalf("Reschedule of ended timer %x succeeded", h)
			}
			if m.w.Cancel(h) {
				t.Fatalf("Cancel of ended timer %x succeeded", h)
			}
		},
		"Reschedule": func(t *rapid.T) {
			data, mt, ok := m.anyPending(t)
			if !ok {
				t.Skip("nothing pending")
			}
			due := m.high + distance(t, "newDelay")
			if !m.w.Reschedule(mt.handle, time.Duration(due)*time.Millisecond) {
				t.Fatalf("Reschedule of pending timer %d failed", data)
			}
			m.pending[data] = timerAt(mt.handle, due, m.high, m.top)
		},
		"Advance": func(t *rapid.T) {
			step := distance(t, "step")
			if rapid.IntRange(0, 9).Draw(t, "back") == 0 {
				step = -step // a clock jumping backwards
			}
			now := m.clock.Advance(time.Duration(step) * time.Millisecond)
			m.high = max(m.high, int64(now/time.Millisecond))
			m.fired = m.fired[:0]
			m.w.Advance()
			for _, e := range m.fired {
				mt, ok := m.pending[e.Data]
				if !ok {
					t.Fatalf("timer %d fired but was not pending (cancelled, or fired twice)", e.Data)
				}
				if e.Timer != mt.handle {
					t.Fatalf("timer %d fired with handle %x, scheduled as %x", e.Data, e.Timer, mt.handle)
				}
				if mt.due > m.high {
					t.Fatalf("timer %d fired early: due %d, clock %d", e.Data, mt.due, m.high)
				}
				delete(m.pending, e.Data)
				m.ended = append(m.ended, e.Timer)
			}
			for data, mt := range m.pending {
				if m.high >= mt.deadline {
					t.Fatalf("timer %d due %d (deadline %d) still pending at %d", data, mt.due, mt.deadline, m.high)
				}
			}
			if m.w.Len() != len(m.pending) {
				t.Fatalf("Len %d, model %d", m.w.Len(), len(m.pending))
			}
		},
	}
}

func TestWheelModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &wheelModel{clock: &ManualClock{}, pending: map[uint64]modelTimer{}}
		m.clock.Set(time.Duration(rapid.Int64Range(0, 1<<40).Draw(t, "start")) * time.Millisecond)
		m.high = int64(m.clock.Now() / time.Millisecond)
		levels := rapid.SampledFrom([]int{2, 4, 9}).Draw(t, "levels")
		w, err := NewWheel(WheelOptions{Clock: m.clock, Levels: levels, Shards: rapid.IntRange(1, 3).Draw(t, "shards"),
			Expire: func(batch []Expired) { m.fired = append(m.fired, batch...) }})
		if err != nil {
			t.Fatal(err)
		}
		m.w = w
		m.top = int64(1) << (3 * (levels - 1))
		t.Repeat(m.actions())
	})
}
