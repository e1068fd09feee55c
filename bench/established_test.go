package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xsync3 "github.com/puzpuzpuz/xsync/v3"
	xsync4 "github.com/puzpuzpuz/xsync/v4"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The implementations compared. map is an unlocked Go map, read only: the
// floor no concurrent table can beat by much. socktable-max is socktable
// with a MaxEntries limit twice the table's size, which the workloads never
// reach: the cost of the exact entry count a limit needs.
var (
	lookupImpls = []string{"socktable", "map", "rwmutex", "syncmap", "xsync", "xsyncv4"}
	writeImpls  = []string{"socktable", "socktable-max", "rwmutex", "syncmap", "xsync", "xsyncv4"}
)

// rwMap is gVisor's design: a Go map behind a sync.RWMutex.
type rwMap struct {
	mu sync.RWMutex
	m  map[tuple.Tuple]*sock
}

// tables holds one implementation's table (one field set).
type tables struct {
	st            *table.Established[*sock]
	m             map[tuple.Tuple]*sock
	rw            *rwMap
	sm            *sync.Map
	x3            *xsync3.MapOf[tuple.Tuple, *sock]
	x4            *xsync4.Map[tuple.Tuple, *sock]
	bytesPerEntry float64
}

// build creates impl's table presized for n entries and fills it with the
// fixture's keys, measuring the heap it takes.
func build(b *testing.B, impl string, f *fixture, n int) *tables {
	before := heapBytes()
	t := &tables{}
	switch impl {
	case "socktable", "socktable-max":
		opts := table.EstablishedOptions{Capacity: n}
		if impl == "socktable-max" {
			opts.MaxEntries = 2 * n
		}
		st, err := table.NewEstablished[*sock](opts)
		if err != nil {
			b.Fatal(err)
		}
		t.st = st
	case "map":
		t.m = make(map[tuple.Tuple]*sock, n)
	case "rwmutex":
		t.rw = &rwMap{m: make(map[tuple.Tuple]*sock, n)}
	case "syncmap":
		t.sm = &sync.Map{}
	case "xsync":
		t.x3 = xsync3.NewMapOf[tuple.Tuple, *sock](xsync3.WithPresize(n))
	case "xsyncv4":
		t.x4 = xsync4.NewMap[tuple.Tuple, *sock](xsync4.WithPresize(n))
	}
	for i, k := range f.keys[:n] {
		t.insert(k, f.socks[i])
	}
	t.bytesPerEntry = float64(heapBytes()-before) / float64(n)
	return t
}

// insert is insert-if-absent, the operation a stack needs for a new
// connection. It is not used in timed loops for lookups.
func (t *tables) insert(k tuple.Tuple, v *sock) bool {
	switch {
	case t.st != nil:
		return t.st.Insert(k, v) == nil
	case t.m != nil:
		if _, ok := t.m[k]; ok {
			return false
		}
		t.m[k] = v
		return true
	case t.rw != nil:
		t.rw.mu.Lock()
		defer t.rw.mu.Unlock()
		if _, ok := t.rw.m[k]; ok {
			return false
		}
		t.rw.m[k] = v
		return true
	case t.sm != nil:
		_, loaded := t.sm.LoadOrStore(k, v)
		return !loaded
	case t.x3 != nil:
		_, loaded := t.x3.LoadOrStore(k, v)
		return !loaded
	default:
		_, loaded := t.x4.LoadOrStore(k, v)
		return !loaded
	}
}

func (t *tables) delete(k tuple.Tuple) {
	switch {
	case t.st != nil:
		t.st.Delete(k)
	case t.rw != nil:
		t.rw.mu.Lock()
		delete(t.rw.m, k)
		t.rw.mu.Unlock()
	case t.sm != nil:
		t.sm.Delete(k)
	case t.x3 != nil:
		t.x3.Delete(k)
	default:
		t.x4.Delete(k)
	}
}

// lookup goes through the switch: fine for mixed workloads, where the
// writes dominate; the pure-lookup benchmarks use dedicated loops.
func (t *tables) lookup(k tuple.Tuple) (*sock, bool) {
	switch {
	case t.st != nil:
		return t.st.Lookup(k)
	case t.m != nil:
		v, ok := t.m[k]
		return v, ok
	case t.rw != nil:
		t.rw.mu.RLock()
		v, ok := t.rw.m[k]
		t.rw.mu.RUnlock()
		return v, ok
	case t.sm != nil:
		v, ok := t.sm.Load(k)
		if !ok {
			return nil, false
		}
		return v.(*sock), true
	case t.x3 != nil:
		return t.x3.Load(k)
	default:
		return t.x4.Load(k)
	}
}

var (
	builtMu    sync.Mutex
	builtKey   int
	builtCache = map[string]*tables{}
)

// getTables returns impl's table of n entries, built once per size and
// shared by the hit and miss runs and every -cpu value.
func getTables(b *testing.B, impl string, n int) *tables {
	builtMu.Lock()
	defer builtMu.Unlock()
	if builtKey != n {
		clear(builtCache)
		builtKey = n
	}
	if t := builtCache[impl]; t != nil {
		return t
	}
	f := getFixture(n)
	t := build(b, impl, f, n)
	// One untimed pass of lookups: on this project's virtual machines the
	// first timed run after a build ran at half speed (fresh memory), and
	// whichever run came first paid for it.
	hits := 0
	for _, k := range f.hits {
		if _, ok := t.lookup(k); ok {
			hits++
		}
	}
	lookupHits.Add(int64(hits))
	builtCache[impl] = t
	return t
}

var lookupHits atomic.Int64 // sink for lookup results

// startTiming collects the garbage of earlier runs and table builds, so no
// collection started by them runs into the timed loop, then starts the
// timer (ReportAllocs included).
func startTiming(b *testing.B) {
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
}

// BenchmarkEstablishedLookup: one lookup per op on every core, keys probed
// in shuffled order, 1e3 (cache-resident) to 1e6 (DRAM-bound) entries.
func BenchmarkEstablishedLookup(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"1e3", 1000}, {"1e5", 100000}, {"1e6", 1000000}} {
		n := size(sz.n)
		for _, op := range []string{"hit", "miss"} {
			for _, impl := range lookupImpls {
				b.Run(fmt.Sprintf("n=%s/op=%s/impl=%s", sz.name, op, impl), func(b *testing.B) {
					t := getTables(b, impl, n)
					f := getFixture(n)
					probes := f.hits
					if op == "miss" {
						probes = f.misses
					}
					startTiming(b)
					runLookups(b, t, probes)
					b.ReportMetric(t.bytesPerEntry, "B/entry") // after ResetTimer, which drops reported metrics
				})
			}
		}
	}
}

// runLookups has one loop per implementation, so no interface or function
// value sits between the benchmark and the table.
func runLookups(b *testing.B, t *tables, probes []tuple.Tuple) {
	var start atomic.Int64
	next := func() int { return int(start.Add(7919)) % len(probes) } // spread goroutines' starting points
	switch {
	case t.st != nil:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				if _, ok := t.st.Lookup(probes[i]); ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	case t.m != nil:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				if _, ok := t.m[probes[i]]; ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	case t.rw != nil:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				t.rw.mu.RLock()
				_, ok := t.rw.m[probes[i]]
				t.rw.mu.RUnlock()
				if ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	case t.sm != nil:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				if _, ok := t.sm.Load(probes[i]); ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	case t.x3 != nil:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				if _, ok := t.x3.Load(probes[i]); ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	default:
		b.RunParallel(func(pb *testing.PB) {
			i, hits := next(), 0
			for pb.Next() {
				if _, ok := t.x4.Load(probes[i]); ok {
					hits++
				}
				if i++; i == len(probes) {
					i = 0
				}
			}
			lookupHits.Add(int64(hits))
		})
	}
}

// BenchmarkEstablishedLookupBatch compares single lookups (batch=1) with
// LookupBatch over bursts of 16 and of 64 keys (one call each); ns/op is
// per key. The form=hashed-kind
// runs are the demultiplexer's calls, LookupHashedKind and
// LookupBatchHashed with kinds, given hashes computed before the timed
// loop (the demultiplexer hashes each segment once for all its tables).
// impl=floor is the machine's floor for a lookup of one memory line:
// independent loads of random 64-byte lines in shuffled order, over a
// region as large as the table's memory, allocated as the table's is (a
// Go slice, the same page size).
func BenchmarkEstablishedLookupBatch(b *testing.B) {
	n := size(1000000)
	for _, form := range []string{"", "form=hashed-kind/"} {
		for _, batch := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("n=1e6/batch=%d/%simpl=socktable", batch, form), func(b *testing.B) {
				t := getTables(b, "socktable", n)
				probes := getFixture(n).hits
				var hashes []uint64
				if form != "" {
					hashes = make([]uint64, len(probes))
					for i, k := range probes {
						hashes[i] = t.st.Hasher().Hash(k)
					}
				}
				startTiming(b)
				var start atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(start.Add(7919*16)) % (len(probes) - batch)
					vals, kinds, found := make([]*sock, batch), make([]table.Kind, batch), make([]bool, batch)
					hits, pending := 0, 0
					for pb.Next() {
						if batch == 1 {
							var ok bool
							if hashes != nil {
								_, _, ok = t.st.LookupHashedKind(hashes[i], probes[i])
							} else {
								_, ok = t.st.Lookup(probes[i])
							}
							if ok {
								hits++
							}
							if i++; i == len(probes) {
								i = 0
							}
							continue
						}
						if pending++; pending < batch {
							continue
						}
						pending = 0
						if hashes != nil {
							t.st.LookupBatchHashed(hashes[i:i+batch], probes[i:i+batch], vals, kinds, found)
						} else {
							t.st.LookupBatch(probes[i:i+batch], vals, found)
						}
						hits += int(boolCount(found))
						if i += batch; i+batch > len(probes) {
							i = 0
						}
					}
					lookupHits.Add(int64(hits))
				})
			})
		}
	}
	b.Run("n=1e6/batch=16/impl=floor", func(b *testing.B) {
		region, lines := getFloorRegion(b, n)
		startTiming(b)
		var start atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(start.Add(7919*16)) % len(lines)
			var sum uint64
			for pb.Next() {
				sum += region[lines[i]] // no load depends on another: all may be in flight at once
				if i++; i == len(lines) {
					i = 0
				}
			}
			lookupHits.Add(int64(sum & 1))
		})
	})
}

var (
	floorMu     sync.Mutex
	floorN      int
	floorRegion []uint64
	floorLines  []int
)

// getFloorRegion returns the floor's region, as many bytes as the
// socktable table of n entries holds (Stats' bytes per entry × entries),
// and 1<<20 word offsets into it, one per random line, shuffled.
func getFloorRegion(b *testing.B, n int) ([]uint64, []int) {
	floorMu.Lock()
	defer floorMu.Unlock()
	if floorN == n {
		return floorRegion, floorLines
	}
	st := getTables(b, "socktable", n).st.Stats()
	bytes := int(st.BytesPerEntry * float64(st.Entries))
	region := make([]uint64, bytes/8)
	for i := range region { // touch every page, as the table's inserts did
		region[i] = uint64(i)
	}
	nLines := len(region) / 8
	r := rand.New(rand.NewPCG(uint64(n), 64))
	lines := make([]int, 1<<20)
	for i := range lines {
		lines[i] = r.IntN(nLines) * 8
	}
	floorN, floorRegion, floorLines = n, region, lines
	return region, lines
}

func boolCount(bs []bool) (n int64) {
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// mixedSocks is how many distinct sockets the mixed workload's inserts
// store: few enough to stay in cache, like the key.
const mixedSocks = 1024

// BenchmarkEstablishedMixed: 90% lookups, 5% inserts, 5% deletes on a
// table of about 1e6 entries (keys drawn from a pool of 2e6, so inserts
// and deletes balance), on every core.
func BenchmarkEstablishedMixed(b *testing.B) {
	n := size(1000000)
	for _, impl := range writeImpls {
		b.Run(fmt.Sprintf("n=1e6/mix=90-5-5/impl=%s", impl), func(b *testing.B) {
			builtMu.Lock()
			clear(builtCache) // a fresh table per run: writes change it
			builtKey = 0
			builtMu.Unlock()
			pool := getFixture(2 * n)
			t := build(b, impl, pool, n)
			// Warm up to the steady state: the first writes to a table
			// presized exactly for n entries make every implementation
			// grow once; that is not what this benchmark measures.
			x := xorshift(42)
			for range n / 2 {
				r := x.next()
				i := int(r>>32) % (2 * n)
				if r%2 == 0 {
					t.insert(pool.keys[i], pool.socks[i])
				} else {
					t.delete(pool.keys[i])
				}
			}
			startTiming(b)
			defer b.ReportMetric(t.bytesPerEntry, "B/entry") // after ResetTimer, which drops reported metrics
			var seed atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				x := xorshift(seed.Add(0x9e3779b97f4a7c15) | 1)
				hits := 0
				for pb.Next() {
					r := x.next()
					// The key is computed, not read from the pool: a
					// random read of a 96 MB array would add a memory
					// miss to every op of every implementation (a
					// stack has the tuple in the packet it holds).
					i := int(r>>32) % (2 * n)
					k := flowKey(i)
					switch p := r % 100; {
					case p < 90:
						if _, ok := t.lookup(k); ok {
							hits++
						}
					case p < 95:
						t.insert(k, pool.socks[i%mixedSocks])
					default:
						t.delete(k)
					}
				}
				lookupHits.Add(int64(hits))
			})
		})
	}
}

// BenchmarkEstablishedChurn is the nginx pattern: short-lived connections
// arrive and leave while 1e5 long-lived ones stay. Each op inserts a new
// connection, looks it up once and deletes the one opened 256 ops earlier
// on the same core.
func BenchmarkEstablishedChurn(b *testing.B) {
	n := size(100000)
	for _, impl := range writeImpls {
		b.Run(fmt.Sprintf("impl=%s", impl), func(b *testing.B) {
			f := getFixture(n)
			t := build(b, impl, f, n)
			s := &sock{}
			startTiming(b)
			var worker atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				base := int(worker.Add(1)) << 24 // keys no other goroutine uses
				var ring [256]tuple.Tuple
				i := 0
				for pb.Next() {
					k := flowKey(base + n + i)
					slot := &ring[i%len(ring)]
					if i >= len(ring) {
						t.delete(*slot)
					}
					t.insert(k, s)
					t.lookup(k)
					*slot = k
					i++
				}
			})
		})
	}
}

// BenchmarkEstablishedResize times one stop-the-writers grow of a full
// table of 1e6 entries (EstablishedOptions.StopWritersToResize: the pause
// writers wait through; readers never do): per op, one Insert that finds
// the table at its load limit and rehashes it. Reported as ns per entry
// moved. The default, incremental resize spreads this work over writes:
// BenchmarkEstablishedGrowLatency measures it.
func BenchmarkEstablishedResize(b *testing.B) {
	n := size(1000000)
	f := getFixture(n + 1)
	b.Run("n=1e6/impl=socktable-stop", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			st, err := table.NewEstablished[*sock](table.EstablishedOptions{Capacity: n, StopWritersToResize: true})
			if err != nil {
				b.Fatal(err)
			}
			for i, k := range f.keys[:n] {
				if err := st.Insert(k, f.socks[i]); err != nil {
					b.Fatal(err)
				}
			}
			before := st.Stats().Resizes
			for i := n; st.Stats().Resizes == before; i++ {
				start := time.Now()
				if err := st.Insert(flowKey(i), f.socks[0]); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		b.ReportMetric(0, "ns/op")
	})
}
