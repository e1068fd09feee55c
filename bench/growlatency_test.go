package bench

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xsync3 "github.com/puzpuzpuz/xsync/v3"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// BenchmarkEstablishedGrowLatency drives a table from 1e5 to 4e6 entries
// (an unpresized one: every grow on the way happens under the inserts)
// and reports the latency of each insert: p50, p99, p99.99 and the max, in
// ns. Meanwhile, with two or more Ps, a goroutine on another P looks up
// present and absent keys in batches of 256 and reports the median
// batch's ns per lookup, for hits and misses, apart for the batches that
// ran while a migration was in flight (socktable only: the other two
// resize in one step). impl=socktable is the incremental migration,
// impl=socktable-stop the stop-the-writers copy
// (EstablishedOptions.StopWritersToResize), impl=xsync xsync.MapOf,
// which also stops writers to resize.
func BenchmarkEstablishedGrowLatency(b *testing.B) {
	to := size(4000000)
	from := to / 40 // 1e5, or 250 in short runs
	for _, impl := range []string{"socktable", "socktable-stop", "xsync"} {
		b.Run("n=1e5-4e6/impl="+impl, func(b *testing.B) {
			lat := make([]int64, 0, to-from)
			var res growLookups
			for range b.N {
				lat = lat[:0]
				res = runGrow(impl, from, to, &lat)
			}
			reportGrow(b, lat, res)
		})
	}
}

// growTable is the three tables' insert and lookup, and whether a
// migration is in flight.
type growTable struct {
	insert    func(tuple.Tuple) bool
	lookup    func(tuple.Tuple) bool
	migrating func() bool
}

var growSock = &sock{}

func newGrowTable(impl string) growTable {
	switch impl {
	case "xsync":
		m := xsync3.NewMapOf[tuple.Tuple, *sock]()
		return growTable{
			insert: func(k tuple.Tuple) bool {
				_, loaded := m.LoadOrStore(k, growSock)
				return !loaded
			},
			lookup:    func(k tuple.Tuple) bool { _, ok := m.Load(k); return ok },
			migrating: func() bool { return false },
		}
	}
	st, err := table.NewEstablished[*sock](table.EstablishedOptions{StopWritersToResize: impl == "socktable-stop"})
	if err != nil {
		panic(err)
	}
	return growTable{
		insert:    func(k tuple.Tuple) bool { return st.Insert(k, growSock) == nil },
		lookup:    func(k tuple.Tuple) bool { _, ok := st.Lookup(k); return ok },
		migrating: func() bool { return st.Stats().Migrating },
	}
}

// growLookups is the lookup goroutine's batches, ns per lookup.
type growLookups struct {
	hit, miss, hitMig, missMig []float64
}

// runGrow fills a new table to from entries, then times each insert up
// to to, appending the latencies to lat, while a reader looks up.
func runGrow(impl string, from, to int, lat *[]int64) growLookups {
	t := newGrowTable(impl)
	for i := range from {
		if !t.insert(flowKey(i)) {
			panic("duplicate key")
		}
	}
	runtime.GC()
	var res growLookups
	var stop atomic.Bool
	var wg sync.WaitGroup
	if runtime.GOMAXPROCS(0) > 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res = lookupWhileGrowing(t, from, &stop)
		}()
	}
	for i := from; i < to; i++ {
		k := flowKey(i)
		start := time.Now()
		ok := t.insert(k)
		*lat = append(*lat, int64(time.Since(start)))
		if !ok {
			panic("duplicate key")
		}
	}
	stop.Store(true)
	wg.Wait()
	return res
}

// lookupWhileGrowing times batches of 256 hits (keys below present,
// present throughout) and 256 misses until stop.
func lookupWhileGrowing(t growTable, present int, stop *atomic.Bool) growLookups {
	const batch = 256
	var res growLookups
	x := uint64(1)
	for n := 0; !stop.Load(); n++ {
		mig := t.migrating()
		start := time.Now()
		for range batch {
			x = x*6364136223846793005 + 1442695040888963407
			if !t.lookup(flowKey(int(x>>33) % present)) {
				panic("a present key was missed")
			}
		}
		hit := float64(time.Since(start).Nanoseconds()) / batch
		start = time.Now()
		for range batch {
			x = x*6364136223846793005 + 1442695040888963407
			if t.lookup(flowKey(1<<26 + int(x>>33)%present)) {
				panic("an absent key was found")
			}
		}
		miss := float64(time.Since(start).Nanoseconds()) / batch
		if mig && t.migrating() {
			res.hitMig, res.missMig = append(res.hitMig, hit), append(res.missMig, miss)
		} else if !mig {
			res.hit, res.miss = append(res.hit, hit), append(res.miss, miss)
		}
	}
	return res
}

func reportGrow(b *testing.B, lat []int64, res growLookups) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) }
	var sum int64
	for _, l := range lat {
		sum += l
	}
	b.ReportMetric(float64(sum)/float64(len(lat)), "ns/op")
	b.ReportMetric(at(0.5), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(0.9999), "p9999-ns")
	b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
	median := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	if len(res.hit) > 0 {
		b.ReportMetric(median(res.hit), "hit-ns")
		b.ReportMetric(median(res.miss), "miss-ns")
	}
	if len(res.hitMig) > 0 {
		b.ReportMetric(median(res.hitMig), "hit-migrating-ns")
		b.ReportMetric(median(res.missMig), "miss-migrating-ns")
	}
}
