package bench

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// churnRate and churnLifetime are the workload of BenchmarkTimeWaitChurn:
// a server closing 100k connections a second, each spending Linux's 60 s
// in TIME_WAIT, holds 6M entries, and 100k of them expire every second.
const (
	churnRate     = 100000
	churnLifetime = timewait.TimeWaitLen
)

// mapTimeWait is the baseline: a map behind a mutex and one time.AfterFunc
// per entry that deletes it, the way a stack without a wheel keeps
// TIME_WAIT (each timer a runtime timer plus a closure).
type mapTimeWait struct {
	mu sync.Mutex
	m  map[tuple.Tuple]*mapTWEntry
}

type mapTWEntry struct {
	state timewait.State
	timer *time.Timer
}

func (t *mapTimeWait) enter(k tuple.Tuple, s timewait.State, d time.Duration) {
	e := &mapTWEntry{state: s}
	t.mu.Lock()
	t.m[k] = e
	e.timer = time.AfterFunc(d, func() {
		t.mu.Lock()
		if t.m[k] == e {
			delete(t.m, k)
		}
		t.mu.Unlock()
	})
	t.mu.Unlock()
}

func (t *mapTimeWait) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *mapTimeWait) stopAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.m {
		e.timer.Stop()
	}
}

// churnState is what a closing connection hands to TIME_WAIT.
func churnState(i int) timewait.State {
	return timewait.State{RcvNxt: uint32(i), SndNxt: uint32(i) * 3, RcvWnd: 65535, HasTimestamps: true,
		TSRecent: uint32(i)}
}

// BenchmarkTimeWaitChurn: the steady state of a server closing 100k
// connections a second, each entering TIME_WAIT for 60 s, so that 6M
// entries (1e4 in short mode) are held and 100k expire every second. One
// op puts one more closing connection into TIME_WAIT, on every core;
// B/entry is the heap per entry of the filled table.
//
// socktable runs on simulated time (a manual clock at 10 µs per
// connection), so each op also pays for one expiry, on average: expiry
// comes in bursts, as a 60 s timer fires with the 4.1 s granularity of its
// wheel level (Linux's TIME_WAIT timers do too), so runs shorter than a
// few seconds see a share of a burst or none. The baseline's AfterFunc
// timers run on real time: the fill makes their due times uniform over
// the next 60 s, so they expire at 100k a second while the ops enter
// faster than that; its ops pay for fewer expiries than socktable's.
func BenchmarkTimeWaitChurn(b *testing.B) {
	n := size(churnRate * int(churnLifetime/time.Second))
	for _, impl := range []string{"socktable", "afterfunc"} {
		b.Run("impl="+impl, func(b *testing.B) {
			before := heapBytes()
			var enter func(i int)
			var stop func()
			var count func() int
			switch impl {
			case "socktable":
				// Simulated time: connection i closes at i×10 µs, so the
				// fill is exactly the history of the steady state, and in
				// the timed loop every op enters one connection and (on
				// average) expires one, the clock moving 1 ms every 100 ops.
				clock := &timewait.ManualClock{}
				at := func(i int) time.Duration { return time.Duration(i) * (time.Second / churnRate) }
				tw, err := timewait.New(timewait.Options{Clock: clock, MaxBuckets: n + n/3})
				if err != nil {
					b.Fatal(err)
				}
				defer tw.Close()
				for i := range n {
					clock.Set(at(i))
					if i%100 == 0 {
						tw.Advance()
					}
					if err := tw.Enter(flowKey(i), churnState(i)); err != nil {
						b.Fatal(err)
					}
				}
				enter = func(i int) {
					if i%100 == 0 {
						clock.Set(at(i))
						tw.Advance()
					}
					if err := tw.Enter(flowKey(i), churnState(i)); err != nil {
						b.Fatal(err)
					}
				}
				stop = func() {}
				count = tw.Len
			case "afterfunc":
				tw := &mapTimeWait{m: make(map[tuple.Tuple]*mapTWEntry)}
				for i := range n {
					tw.enter(flowKey(i), churnState(i), time.Duration(int64(churnLifetime)*int64(i)/int64(n)))
				}
				enter = func(i int) { tw.enter(flowKey(i), churnState(i), churnLifetime) }
				stop = tw.stopAll
				count = tw.len
			}
			perEntry := float64(heapBytes()-before) / float64(count()) // a few AfterFuncs fire during the fill
			startTiming(b)
			start, startCount := time.Now(), count()
			var next atomic.Int64
			next.Store(int64(n))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					enter(int(next.Add(1)))
				}
			})
			b.StopTimer()
			elapsed := time.Since(start)
			stop()
			b.ReportMetric(perEntry, "B/entry")
			// The entries that expired meanwhile, per second: about 100k
			// when the timers keep up with the rate.
			b.ReportMetric(float64(startCount+b.N-count())/elapsed.Seconds(), "expired/s")
		})
	}
}

// BenchmarkTimeWaitLookup: the price of keeping TIME_WAIT entries in a
// table of their own, paid by the segments that miss the established
// table (SYNs for listeners, segments for TIME_WAIT entries): one Lookup
// per op on every core in a table of 1e6 entries, of a present four-tuple
// (hit) or an absent one (miss), in shuffled order.
func BenchmarkTimeWaitLookup(b *testing.B) {
	n := size(1000000)
	tw, err := timewait.New(timewait.Options{Clock: &timewait.ManualClock{}, MaxBuckets: n})
	if err != nil {
		b.Fatal(err)
	}
	defer tw.Close()
	f := getFixture(n)
	for i, k := range f.keys {
		if err := tw.Enter(k, churnState(i)); err != nil {
			b.Fatal(err)
		}
	}
	for _, probe := range []struct {
		name string
		keys []tuple.Tuple
		want bool
	}{{"hit", f.hits, true}, {"miss", f.misses, false}} {
		b.Run("entries=1e6/"+probe.name+"/impl=socktable", func(b *testing.B) {
			startTiming(b)
			var seed atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1) * 7919)
				for pb.Next() {
					if _, ok := tw.Lookup(probe.keys[i%len(probe.keys)]); ok != probe.want {
						b.Fatal("wrong answer")
					}
					i++
				}
			})
		})
	}
}
