package fuzz

import (
	"testing"
	"time"

	"github.com/socktable/socktable/timewait"
)

// FuzzWheel runs a program of Schedule, Cancel, Reschedule and clock moves
// (forward and back) decoded from the fuzzer's bytes against a Wheel with
// a manual clock, and checks every firing: never before its due time on
// the clock's latest reading, never twice, never after a Cancel that
// reported true, with Len equal to the timers scheduled and not yet ended.
// Handles of ended timers stay stale, even once their nodes are reused
// (a cancel immediately followed by a schedule takes the freed node):
// Cancel and Reschedule with them report false.
func FuzzWheel(f *testing.F) {
	f.Add([]byte{0, 5, 0, 200, 3, 10, 1, 0, 3, 255})
	f.Add([]byte{0, 1, 2, 0, 9, 3, 40, 3, 200, 4, 30, 3, 250})
	f.Add([]byte{0, 9, 0, 30, 6, 0, 5, 0, 2, 1, 3, 40, 5, 1, 3, 255})
	f.Fuzz(func(t *testing.T, program []byte) {
		clock := &timewait.ManualClock{}
		due := map[uint64]time.Duration{} // pending timers by data
		handles := map[uint64]timewait.Timer{}
		var ended []timewait.Timer // handles of timers that fired or were cancelled
		var high time.Duration     // the clock's latest reading
		var next uint64
		w, err := timewait.NewWheel(timewait.WheelOptions{Clock: clock, Levels: 1 + int(len(program)%9), Shards: 2,
			Expire: func(batch []timewait.Expired) {
				for _, e := range batch {
					at, ok := due[e.Data]
					if !ok {
						t.Fatalf("timer %d fired but is not pending", e.Data)
					}
					if at > high {
						t.Fatalf("timer %d fired early: due %v, clock %v", e.Data, at, high)
					}
					if e.Timer != handles[e.Data] {
						t.Fatalf("timer %d fired with handle %x, scheduled as %x", e.Data, e.Timer, handles[e.Data])
					}
					delete(due, e.Data)
					delete(handles, e.Data)
					ended = append(ended, e.Timer)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		pick := func(b byte) (uint64, bool) { // a pending timer, by the byte
			if len(due) == 0 {
				return 0, false
			}
			k := int(b) % len(due)
			for d := range due {
				if k == 0 {
					return d, true
				}
				k--
			}
			return 0, false
		}
		for i := 0; i+1 < len(program); i += 2 {
			op, arg := program[i]%7, program[i+1]
			delay := time.Duration(arg) * time.Duration(arg) * time.Millisecond * 7 // 0 to 7.6 min
			switch op {
			case 0:
				next++
				at := high + delay
				tm, err := w.Schedule(at, next)
				if err != nil {
					t.Fatal(err)
				}
				due[next], handles[next] = at, tm
			case 1, 6: // 6: cancel, then schedule a timer that takes the node
				if d, ok := pick(arg); ok {
					if !w.Cancel(handles[d]) {
						t.Fatalf("Cancel of pending timer %d failed", d)
					}
					ended = append(ended, handles[d])
					delete(due, d)
					delete(handles, d)
					if op == 6 {
						next++
						at := high + delay/5
						tm, err := w.Schedule(at, next)
						if err != nil {
							t.Fatal(err)
						}
						due[next], handles[next] = at, tm
					}
				}
			case 2:
				if d, ok := pick(arg); ok {
					at := high + delay/3
					if !w.Reschedule(handles[d], at) {
						t.Fatalf("Reschedule of pending timer %d failed", d)
					}
					due[d] = at
				}
			case 3:
				high = max(high, clock.Advance(delay))
				w.Advance()
			case 4:
				clock.Advance(-delay) // backwards: nothing may fire early
				w.Advance()
			case 5: // a stale handle
				if len(ended) > 0 {
					h := ended[int(arg)%len(ended)]
					if w.Reschedule(h, high) {
						t.Fatalf("Reschedule of ended timer %x succeeded", h)
					}
					if w.Cancel(h) {
						t.Fatalf("Cancel of ended timer %x succeeded", h)
					}
				}
			}
			if w.Len() != len(due) {
				t.Fatalf("Len %d, pending %d", w.Len(), len(due))
			}
		}
	})
}
