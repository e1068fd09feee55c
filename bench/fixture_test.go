package bench

import (
	"math/rand/v2"
	"os"
	"runtime"
	"sync"

	"github.com/socktable/socktable/tuple"
)

// short is set by SOCKTABLE_BENCH_SHORT=1: large sizes shrink to 1e4.
var short = os.Getenv("SOCKTABLE_BENCH_SHORT") != ""

// size returns n, or a small stand-in in short mode.
func size(n int) int {
	if short && n > 10000 {
		return 10000
	}
	return n
}

// sock stands for a stack's socket: the value every table maps to.
type sock struct {
	id int
	_  [56]byte
}

var serverEndpoint = tuple.MustEndpoint("192.0.2.1:443")

// flowKey returns the i-th server-side flow: one listener, clients spread
// over a /8 and their ports, as a busy server sees them.
func flowKey(i int) tuple.Tuple {
	return tuple.Tuple{
		Local: serverEndpoint,
		Remote: tuple.Endpoint{
			Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			Port: uint16(1024 + (i>>24)*7919%64000 + i%7),
		},
	}
}

// fixture is a set of n present keys, their sockets, and shuffled probe
// orders for hits and for misses.
type fixture struct {
	keys   []tuple.Tuple
	socks  []*sock
	hits   []tuple.Tuple // the keys, shuffled
	misses []tuple.Tuple // absent keys, shuffled
}

var (
	fixtureMu    sync.Mutex
	fixtureCache = map[int]*fixture{}
)

func getFixture(n int) *fixture {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if f := fixtureCache[n]; f != nil {
		return f
	}
	clear(fixtureCache) // one size at a time: keep the heap small
	r := rand.New(rand.NewPCG(uint64(n), 1))
	f := &fixture{keys: make([]tuple.Tuple, n), socks: make([]*sock, n)}
	for i := range n {
		f.keys[i] = flowKey(i)
		f.socks[i] = &sock{id: i}
	}
	f.hits = append([]tuple.Tuple(nil), f.keys...)
	r.Shuffle(n, func(i, j int) { f.hits[i], f.hits[j] = f.hits[j], f.hits[i] })
	f.misses = make([]tuple.Tuple, n)
	for i := range n {
		f.misses[i] = flowKey(n + i)
	}
	r.Shuffle(n, func(i, j int) { f.misses[i], f.misses[j] = f.misses[j], f.misses[i] })
	fixtureCache[n] = f
	return f
}

// heapBytes measures the live heap after a full collection.
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// xorshift is a tiny per-goroutine generator for workload mixes.
type xorshift uint64

func (x *xorshift) next() uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return uint64(*x)
}
