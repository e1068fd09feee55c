package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// listenerSpec is one listener of the benchmark's server: distinct
// addresses and ports, as on a box hosting many services.
func listenerSpec(i int) tuple.Endpoint {
	return tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: uint16(1000 + i%7)}
}

// linearListeners is the smoltcp / early-Asterinas design: scan every
// listener, scoring each.
type linearListeners struct {
	eps []tuple.Endpoint
}

func (l *linearListeners) lookup(dst tuple.Endpoint) (int, bool) {
	best, score := -1, 0
	for i, ep := range l.eps {
		s := 0
		switch {
		case ep.Port != dst.Port:
		case ep.Addr == dst.Addr:
			s = 2
		case ep.Addr.IsUnspecified():
			s = 1
		}
		if s > score {
			best, score = i, s
		}
	}
	return best, best >= 0
}

// rwListeners is gVisor's design: maps behind an RWMutex, exact address
// first, then the wildcard.
type rwListeners struct {
	mu sync.RWMutex
	m  map[tuple.Endpoint]int
}

func (l *rwListeners) lookup(dst tuple.Endpoint) (int, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if v, ok := l.m[dst]; ok {
		return v, true
	}
	v, ok := l.m[tuple.Endpoint{Port: dst.Port}]
	return v, ok
}

// BenchmarkListenerLookup: the listener lookup of a SYN on every core,
// with 10 or 1e4 listeners, each lookup for a random one of them.
func BenchmarkListenerLookup(b *testing.B) {
	for _, n := range []struct {
		name string
		n    int
	}{{"10", 10}, {"1e4", 10000}} {
		probes := make([]tuple.Endpoint, 4096)
		for i := range probes {
			probes[i] = listenerSpec(int(uint32(i*2654435761)) % n.n)
		}
		src := tuple.MustEndpoint("198.51.100.7:40000")
		for _, impl := range []string{"socktable", "linear", "rwmutex"} {
			b.Run(fmt.Sprintf("listeners=%s/impl=%s", n.name, impl), func(b *testing.B) {
				var lookup func(tuple.Endpoint) (int, bool)
				switch impl {
				case "socktable":
					ports, _ := table.NewPorts(table.PortsOptions{})
					idx, _ := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
					for i := range n.n {
						ep := listenerSpec(i)
						bd, err := ports.Bind(table.BindRequest{Family: 4, Addr: ep.Addr, Port: ep.Port})
						if err != nil {
							b.Fatal(err)
						}
						if _, err := idx.Listen(bd, i); err != nil {
							b.Fatal(err)
						}
					}
					// The listener's handle, as the baselines return theirs
					// (and Linux's lookup its socket): no dereference.
					lookup = func(dst tuple.Endpoint) (int, bool) {
						_, ok := idx.Lookup(dst, src, 0)
						return 0, ok
					}
				case "linear":
					l := &linearListeners{}
					for i := range n.n {
						l.eps = append(l.eps, listenerSpec(i))
					}
					lookup = l.lookup
				case "rwmutex":
					l := &rwListeners{m: map[tuple.Endpoint]int{}}
					for i := range n.n {
						l.m[listenerSpec(i)] = i
					}
					lookup = l.lookup
				}
				startTiming(b)
				var seed atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)) * 1237
					found := 0
					for pb.Next() {
						if _, ok := lookup(probes[i&(len(probes)-1)]); ok {
							found++
						}
						i++
					}
					lookupHits.Add(int64(found))
				})
			})
		}
	}
}
