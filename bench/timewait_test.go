package bench

import (
	"math/rand/v2"
	"runtime"
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

// BenchmarkTimeWaitChurn: a server closing 100k connections a second,
// each entering TIME_WAIT for 60 s, so that 6M entries (1e4 in short mode)
// are held and 100k expire every second. Before timing, the table is
// filled with the 6M entries, due uniformly over the next 60 s of real
// time; then one op puts one more closing connection into TIME_WAIT, paced
// at 100k a second (100 every millisecond, spread over the cores), while
// 100k a second expire by their timers. Since the pace is fixed, the
// figure to compare is cpu-ns/op: the CPU time the whole process spent
// (entering, expiring, the garbage collector, the timers) per connection.
// B/entry is the heap per entry of the filled table.
//
// impl=socktable's entries own nothing (TableOptions[struct{}]);
// impl=socktable-owned's each own a pointer (all to one object, so that
// only the table's cost is counted), as a stack's entries own the port
// bindings they hold, and OnExpire receives them.
//
// socktable's table runs on a clock that a goroutine sets from real time
// every millisecond before it calls Advance (what the table's own ticker
// does with a SystemClock; the manual clock lets the fill spread the due
// times over 60 s). The baseline's AfterFunc timers run on the runtime's
// timers.
func BenchmarkTimeWaitChurn(b *testing.B) {
	n := size(churnRate * int(churnLifetime/time.Second))
	// The lifetime that holds n entries at 100k a second: 60 s, shorter in
	// short mode.
	life := time.Duration(n) * time.Second / churnRate
	for _, impl := range []string{"socktable", "socktable-owned", "afterfunc"} {
		b.Run("impl="+impl, func(b *testing.B) {
			before := heapBytes()
			var enter func(i int)
			var stop func()
			var count func() int
			switch impl {
			case "socktable":
				enter, stop, count = churnTable(b, n, life, struct{}{})
			case "socktable-owned":
				enter, stop, count = churnTable(b, n, life, &sock{})
			case "afterfunc":
				tw := &mapTimeWait{m: make(map[tuple.Tuple]*mapTWEntry)}
				for i := range n {
					tw.enter(flowKey(i), churnState(i), time.Duration(int64(life)*int64(i)/int64(n)))
				}
				enter = func(i int) { tw.enter(flowKey(i), churnState(i), life) }
				stop = tw.stopAll
				count = tw.len
			}
			defer stop()
			perEntry := float64(heapBytes()-before) / float64(count()) // a few AfterFuncs fire during the fill
			startTiming(b)
			start, startCount, cpu0 := time.Now(), count(), cpuTime()
			var next atomic.Int64
			next.Store(int64(n))
			perCore := churnRate / 1000 / runtime.GOMAXPROCS(0) // per core per millisecond
			b.RunParallel(func(pb *testing.PB) {
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					for range perCore {
						if !pb.Next() {
							return
						}
						enter(int(next.Add(1)))
					}
					<-tick.C
				}
			})
			b.StopTimer()
			cpu, elapsed := cpuTime()-cpu0, time.Since(start)
			b.ReportMetric(perEntry, "B/entry")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			// The entries that expired meanwhile, per second: 100k when the
			// timers keep up with the rate.
			b.ReportMetric(float64(startCount+b.N-count())/elapsed.Seconds(), "expired/s")
		})
	}
}

// churnTable fills a TIME_WAIT table for BenchmarkTimeWaitChurn, with
// every entry owning owner, and starts its clock.
func churnTable[V any](b *testing.B, n int, life time.Duration, owner V) (enter func(int), stop func(), count func() int) {
	clock := &timewait.ManualClock{}
	tw, err := timewait.NewTable(timewait.TableOptions[V]{Clock: clock, Lifetime: life, MaxBuckets: 2 * n,
		OnExpire: func(tuple.Tuple, V) {}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n { // entry i is due at 60 s + i/n of 60 s
		clock.Set(time.Duration(int64(life) * int64(i) / int64(n)))
		if err := tw.Enter(flowKey(i), churnState(i), owner); err != nil {
			b.Fatal(err)
		}
	}
	enter = func(i int) {
		if err := tw.Enter(flowKey(i), churnState(i), owner); err != nil {
			b.Fatal(err)
		}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	stop = func() { close(quit); <-done; tw.Close() }
	start := time.Now()
	go func() { // the table's clock: real time from 60 s on
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				clock.Set(life + time.Since(start))
				tw.Advance()
			}
		}
	}()
	return enter, stop, tw.Len
}

// BenchmarkTimeWaitLookup: the price of keeping TIME_WAIT entries in a
// table of their own, paid by the segments that miss the established
// table (SYNs for listeners, segments for TIME_WAIT entries): one Lookup
// per op on every core in a table of 1e6 entries, of a present four-tuple
// (hit) or an absent one (miss), in shuffled order.
func BenchmarkTimeWaitLookup(b *testing.B) {
	n := size(1000000)
	tw, f := lookupTable(b, n)
	defer tw.Close()
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

// lookupTable returns a TIME_WAIT table holding the n keys of the n-key
// fixture, and the fixture.
func lookupTable(b *testing.B, n int) (*timewait.Table[struct{}], *fixture) {
	tw, err := timewait.NewTable(timewait.TableOptions[struct{}]{Clock: &timewait.ManualClock{}, MaxBuckets: n})
	if err != nil {
		b.Fatal(err)
	}
	f := getFixture(n)
	for i, k := range f.keys {
		if err := tw.Enter(k, churnState(i), struct{}{}); err != nil {
			b.Fatal(err)
		}
	}
	return tw, f
}

// BenchmarkTimeWaitProcess: the segment a TIME_WAIT entry meets most, a
// bare ACK at rcv_nxt (the peer's retransmitted last ACK, or a keepalive),
// which the entry drops after restarting its timer: one Process per op on
// every core in a table of 1e6 entries, in shuffled order, with the
// four-tuple hashed by Process (hash=table) or beforehand, as a stack's
// demux hashes it once for all its tables (hash=caller, ProcessHashed).
func BenchmarkTimeWaitProcess(b *testing.B) {
	n := size(1000000)
	tw, f := lookupTable(b, n)
	defer tw.Close()
	order := rand.New(rand.NewPCG(uint64(n), 2)).Perm(n) // entry order[j] is f.keys[order[j]], RcvNxt order[j]
	hashes := make([]uint64, n)
	for j, i := range order {
		hashes[j] = tw.Hasher().Hash(f.keys[i])
	}
	for _, hashed := range []bool{false, true} {
		name := "entries=1e6/ack/hash=table/impl=socktable"
		if hashed {
			name = "entries=1e6/ack/hash=caller/impl=socktable"
		}
		b.Run(name, func(b *testing.B) {
			startTiming(b)
			var seed atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				j := int(seed.Add(1) * 7919)
				seg := tuple.Segment{Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK}
				for pb.Next() {
					j %= n
					i := order[j]
					seg.Tuple, seg.Seq = f.keys[i], uint32(i)
					var r timewait.Reply
					var ok bool
					if hashed {
						r, _, ok = tw.ProcessHashed(hashes[j], seg.Tuple, &seg)
					} else {
						r, _, ok = tw.Process(seg.Tuple, &seg)
					}
					if !ok || r.Fate != timewait.FateRestarted {
						b.Fatal("wrong answer")
					}
					j++
				}
			})
		})
	}
}
