package bench

import (
	"container/heap"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socktable/socktable/timewait"
)

// heapTimers is the classic alternative to a wheel: a binary heap of
// deadlines behind one mutex, each timer knowing its index so that it can
// be removed (what runtime timers and most event loops do).
type heapTimers struct {
	mu sync.Mutex
	h  timerHeap
}

type heapTimer struct {
	at    int64
	data  uint64
	index int
}

type timerHeap []*heapTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*heapTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

func (q *heapTimers) schedule(at int64, data uint64) *heapTimer {
	t := &heapTimer{at: at, data: data}
	q.mu.Lock()
	heap.Push(&q.h, t)
	q.mu.Unlock()
	return t
}

func (q *heapTimers) cancel(t *heapTimer) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&q.h, t.index)
	return true
}

// BenchmarkTimerScheduleCancel: start a timer and stop it (a
// retransmission timer whose segment was acknowledged) on every core,
// with 1e3 or 1e6 other timers pending. B/entry is the heap growth per
// pending timer.
func BenchmarkTimerScheduleCancel(b *testing.B) {
	for _, p := range []struct {
		name string
		n    int
	}{{"1e3", 1000}, {"1e6", 1000000}} {
		n := size(p.n)
		for _, impl := range []string{"socktable", "afterfunc", "heap"} {
			b.Run(fmt.Sprintf("pending=%s/impl=%s", p.name, impl), func(b *testing.B) {
				far := time.Hour
				before := heapBytes()
				var op func(i uint64)
				var keep any
				switch impl {
				case "socktable":
					w, err := timewait.NewWheel(timewait.WheelOptions{Clock: &timewait.ManualClock{}, Expire: func([]timewait.Expired) {}})
					if err != nil {
						b.Fatal(err)
					}
					defer w.Close()
					for i := range n {
						if _, err := w.ScheduleAfter(far+time.Duration(i)*time.Microsecond, uint64(i)); err != nil {
							b.Fatal(err)
						}
					}
					keep = w
					op = func(i uint64) {
						t, _ := w.ScheduleAfter(far/2+time.Duration(i%1000)*time.Millisecond, i)
						w.Cancel(t)
					}
				case "afterfunc":
					f := func() {}
					ts := make([]*time.Timer, n)
					for i := range ts {
						ts[i] = time.AfterFunc(far+time.Duration(i)*time.Microsecond, f)
					}
					defer func() {
						for _, t := range ts {
							t.Stop()
						}
					}()
					keep = ts
					op = func(i uint64) {
						t := time.AfterFunc(far/2+time.Duration(i%1000)*time.Millisecond, f)
						t.Stop()
					}
				case "heap":
					q := &heapTimers{}
					for i := range n {
						q.schedule(int64(far)+int64(i)*1000, uint64(i))
					}
					keep = q
					op = func(i uint64) {
						t := q.schedule(int64(far/2)+int64(i%1000)*1e6, i)
						q.cancel(t)
					}
				}
				perEntry := float64(heapBytes()-before) / float64(n)
				startTiming(b)
				var seed atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					i := seed.Add(1) << 40
					for pb.Next() {
						op(i)
						i++
					}
				})
				b.StopTimer()
				b.ReportMetric(perEntry, "B/entry")
				_ = keep
			})
		}
	}
}

// BenchmarkTimerScheduleCancelOldest: the retransmission timers of many
// flows, on one goroutine: every op starts a timer and stops the oldest
// one, started 1e6 ops earlier, so that 1e6 timers stay pending and the
// one stopped is cold, as is its neighbour in its bucket (a wheel's
// doubly linked list) or its place in the heap (time.AfterFunc).
func BenchmarkTimerScheduleCancelOldest(b *testing.B) {
	n := size(1000000)
	for _, impl := range []string{"socktable", "afterfunc"} {
		b.Run(fmt.Sprintf("pending=1e6/impl=%s", impl), func(b *testing.B) {
			far := 30 * time.Minute
			var op func(i int)
			switch impl {
			case "socktable":
				w, err := timewait.NewWheel(timewait.WheelOptions{Clock: &timewait.ManualClock{}, Expire: func([]timewait.Expired) {}})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				ring := make([]timewait.Timer, n)
				op = func(i int) {
					k := i % n
					w.Cancel(ring[k])
					ring[k], _ = w.ScheduleAfter(far+time.Duration(i%1000)*time.Millisecond, uint64(i))
				}
			case "afterfunc":
				f := func() {}
				ring := make([]*time.Timer, n)
				defer func() {
					for _, t := range ring {
						t.Stop()
					}
				}()
				op = func(i int) {
					k := i % n
					if ring[k] != nil {
						ring[k].Stop()
					}
					ring[k] = time.AfterFunc(far+time.Duration(i%1000)*time.Millisecond, f)
				}
			}
			for i := range n { // fill the ring, untimed
				op(i)
			}
			startTiming(b)
			i := n
			for b.Loop() {
				op(i)
				i++
			}
		})
	}
}

// BenchmarkTimerExpire: one op is the expiry of 1e6 timers all due at the
// same moment, from that moment until the last one's handler has run. For
// time.AfterFunc each timer runs its function in a goroutine of its own;
// the wheel hands them to one handler in batches.
func BenchmarkTimerExpire(b *testing.B) {
	n := size(1000000)
	for _, impl := range []string{"socktable", "afterfunc"} {
		b.Run(fmt.Sprintf("pending=1e6/impl=%s", impl), func(b *testing.B) {
			b.ReportAllocs()
			switch impl {
			case "socktable":
				clock := &timewait.ManualClock{}
				fired := 0
				w, err := timewait.NewWheel(timewait.WheelOptions{Clock: clock,
					Expire: func(batch []timewait.Expired) { fired += len(batch) }})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				for round := -1; round < b.N; round++ { // round -1 grows the slabs and batch buffers, untimed
					b.StopTimer()
					due := clock.Now() + time.Minute
					for i := range n {
						if _, err := w.Schedule(due, uint64(i)); err != nil {
							b.Fatal(err)
						}
					}
					clock.Set(due + 5*time.Second) // a 60 s timer fires up to 4.1 s late
					fired = 0
					if round >= 0 {
						b.StartTimer()
					}
					w.Advance()
					if fired != n {
						b.Fatalf("fired %d of %d", fired, n)
					}
				}
			case "afterfunc":
				for range b.N {
					b.StopTimer()
					var wg sync.WaitGroup
					wg.Add(n)
					f := func() { wg.Done() }
					due := time.Now().Add(time.Second) // creating 1e6 timers takes about half of it
					for range n {
						time.AfterFunc(time.Until(due), f)
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d) // setup only: the timers are not yet due
					}
					b.StartTimer()
					wg.Wait()
				}
			}
		})
	}
}
