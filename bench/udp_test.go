package bench

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The UDP demux benchmarks: n sockets, each bound to an address and port
// of its own (ports 1024 and up on 192.0.2.1, then .2, ...), and
//
//   - path=connected: every socket connected to a client, datagrams from
//     the clients (socktable: the four-tuple table);
//   - path=bound: unconnected sockets, datagrams from anywhere;
//   - path=reuseport: the bound world plus a 4-member SO_REUSEPORT group
//     on 0.0.0.0:443, datagrams to the group (its pick on top of a bound
//     lookup);
//   - path=wildcard (socktable only): the same with one plain socket on
//     0.0.0.0:443 for the group, so that reuseport minus wildcard is what
//     the pick adds (the flow hash and the member's choice);
//
// against the same lookup over a linear scan of every socket (Linux's
// scoring, the design of small stacks) and over maps behind an RWMutex
// (gVisor's transport demuxer: the four-tuple, then the bound address
// and port, then the wildcard); and for path=connected, floor: the
// established table's hash and lookup alone over the four-tuples.

type udpConn struct{ id int }

// udpBound returns socket i's address and port: ports 1024-61023 first,
// then the next address (at 1e6 a port has 17 sockets).
func udpBound(i int) tuple.Endpoint {
	return tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{192, 0, 2, byte(1 + i/60000)}), Port: uint16(1024 + i%60000)}
}

// udpClient returns the client socket i is connected to.
func udpClient(i int) tuple.Endpoint {
	return tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: 5000 + uint16(i%7)}
}

// udpImpl is one design's lookup, for the benchmark loop; shard is the
// calling goroutine's receive shard (socktable's counters are striped by
// it, as a stack's receive queues would pass theirs).
type udpImpl interface {
	deliver(seg *tuple.Segment, shard int) *udpConn
}

type stUDP struct{ d *socktable.UDPDemux[udpConn] }

// floorUDP is the established table's lookup alone (hash and
// LookupHashed) over the connected sockets' four-tuples: what a connected
// datagram can cost at best.
type floorUDP struct{ m *table.Established[*udpConn] }

func (f floorUDP) deliver(seg *tuple.Segment, _ int) *udpConn {
	c, _ := f.m.LookupHashed(f.m.Hasher().Hash(seg.Tuple), seg.Tuple)
	return c
}

func (s stUDP) deliver(seg *tuple.Segment, shard int) *udpConn {
	return s.d.Deliver(seg, 0, shard).Conn
}

// linearUDP scans every socket with Linux's scoring: exact address
// before wildcard, a connected socket for its peer only.
type linearUDP struct {
	mu    sync.RWMutex
	socks []linearUDPSock
}

type linearUDPSock struct {
	local  tuple.Endpoint
	remote tuple.Endpoint // zero if unconnected
	group  []*udpConn     // reuseport members, nil otherwise
	c      *udpConn
}

func (l *linearUDP) deliver(seg *tuple.Segment, _ int) *udpConn {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t := &seg.Tuple
	var best *linearUDPSock
	score := 0
	for i := range l.socks {
		s := &l.socks[i]
		if s.local.Port != t.Local.Port {
			continue
		}
		sc := 1
		switch {
		case s.local.Addr == t.Local.Addr:
			sc = 3
		case !s.local.Addr.IsUnspecified():
			continue
		}
		if s.remote.Port != 0 {
			if s.remote != t.Remote {
				continue
			}
			sc += 8
		}
		if sc > score {
			best, score = s, sc
		}
	}
	if best == nil {
		return nil
	}
	if best.group != nil {
		return best.group[tuple.Shard(flowMix(t), len(best.group))]
	}
	return best.c
}

// flowMix is the baselines' flow hash for a reuseport pick: a cheap mix
// of the source (they have no keyed hasher; socktable's pick uses the
// hash its four-tuple lookup computed anyway).
func flowMix(t *tuple.Tuple) uint64 {
	hi, lo := t.Remote.Addr.Words()
	return (hi ^ lo ^ uint64(t.Remote.Port)) * 0x9e3779b97f4a7c15
}

// rwUDP is gVisor's design: maps behind an RWMutex, tried from the most
// specific key to the least.
type rwUDP struct {
	mu     sync.RWMutex
	conns  map[tuple.Tuple]*udpConn
	bound  map[tuple.Endpoint][]*udpConn // several: a reuseport group
	anyPrt map[uint16][]*udpConn
}

func (r *rwUDP) deliver(seg *tuple.Segment, _ int) *udpConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := &seg.Tuple
	if c, ok := r.conns[*t]; ok {
		return c
	}
	if g := r.bound[t.Local]; len(g) > 0 {
		return g[tuple.Shard(flowMix(t), len(g))]
	}
	if g := r.anyPrt[t.Local.Port]; len(g) > 0 {
		return g[tuple.Shard(flowMix(t), len(g))]
	}
	return nil
}

// udpWorld is one design holding n sockets for one path, and the
// datagrams the benchmark sends.
type udpWorld struct {
	impl udpImpl
	segs []tuple.Segment
	want []*udpConn
}

var (
	udpWorldMu  sync.Mutex
	udpWorldKey string
	udpWorldVal *udpWorld
)

func getUDPWorld(b *testing.B, impl, path string, n int) *udpWorld {
	udpWorldMu.Lock()
	defer udpWorldMu.Unlock()
	key := fmt.Sprint(impl, path, n)
	if udpWorldKey == key {
		return udpWorldVal
	}
	udpWorldVal, udpWorldKey = nil, ""
	w := buildUDPWorld(b, impl, path, n)
	udpWorldVal, udpWorldKey = w, key
	return w
}

func buildUDPWorld(b *testing.B, impl, path string, n int) *udpWorld {
	conns := make([]*udpConn, n)
	for i := range conns {
		conns[i] = &udpConn{id: i}
	}
	group := []*udpConn{{id: -1}, {id: -2}, {id: -3}, {id: -4}}
	connected := path == "connected"
	w := &udpWorld{}
	switch impl {
	case "socktable":
		d, err := socktable.NewUDPDemux[udpConn](socktable.UDPOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for i, c := range conns {
			ep := udpBound(i)
			bd, err := d.Bind(table.BindRequest{Family: 4, Addr: ep.Addr, Port: ep.Port}, c)
			if err != nil {
				b.Fatal(err)
			}
			if connected {
				if err := bd.Connect(ep.Addr, udpClient(i)); err != nil {
					b.Fatal(err)
				}
			}
		}
		switch path {
		case "reuseport":
			for _, c := range group {
				if _, err := d.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true, Owner: 1}, c); err != nil {
					b.Fatal(err)
				}
			}
		case "wildcard":
			if _, err := d.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443}, group[0]); err != nil {
				b.Fatal(err)
			}
		}
		w.impl = stUDP{d}
	case "floor":
		m, err := table.NewEstablished[*udpConn](table.EstablishedOptions{Capacity: n})
		if err != nil {
			b.Fatal(err)
		}
		for i, c := range conns {
			if err := m.Insert(tuple.Tuple{Local: udpBound(i), Remote: udpClient(i)}, c); err != nil {
				b.Fatal(err)
			}
		}
		w.impl = floorUDP{m}
	case "linear":
		l := &linearUDP{}
		for i, c := range conns {
			s := linearUDPSock{local: udpBound(i), c: c}
			if connected {
				s.remote = udpClient(i)
			}
			l.socks = append(l.socks, s)
		}
		if path == "reuseport" {
			l.socks = append(l.socks, linearUDPSock{local: tuple.Endpoint{Addr: tuple.IPv4Unspecified(), Port: 443}, group: group})
		}
		w.impl = l
	case "rwmutex":
		r := &rwUDP{conns: map[tuple.Tuple]*udpConn{}, bound: map[tuple.Endpoint][]*udpConn{}, anyPrt: map[uint16][]*udpConn{}}
		for i, c := range conns {
			if connected {
				r.conns[tuple.Tuple{Local: udpBound(i), Remote: udpClient(i)}] = c
			} else {
				r.bound[udpBound(i)] = []*udpConn{c}
			}
		}
		if path == "reuseport" {
			r.anyPrt[443] = group
		}
		w.impl = r
	default:
		b.Fatalf("unknown impl %s", impl)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for range min(n, 1<<16) {
		i := rng.IntN(n)
		seg := tuple.Segment{Proto: tuple.ProtoUDP, Version: 4, PayloadLen: 100}
		switch path {
		case "connected":
			seg.Tuple = tuple.Tuple{Local: udpBound(i), Remote: udpClient(i)}
			w.want = append(w.want, conns[i])
		case "bound":
			seg.Tuple = tuple.Tuple{Local: udpBound(i), Remote: udpClient(rng.IntN(1 << 20))}
			w.want = append(w.want, conns[i])
		default: // reuseport, wildcard
			seg.Tuple = tuple.Tuple{Local: tuple.Endpoint{Addr: udpBound(i).Addr, Port: 443}, Remote: udpClient(rng.IntN(1 << 20))}
			w.want = append(w.want, nil) // a member of the group (the wildcard's socket is group[0])
		}
		w.segs = append(w.segs, seg)
	}
	check := w.segs
	if impl == "linear" && n > 10000 {
		check = check[:1000] // a scan of 1e6 sockets per datagram: a sample
	}
	for i := range check { // every design answers as socktable does
		got := w.impl.deliver(&w.segs[i], 0)
		if w.want[i] != nil && got != w.want[i] || w.want[i] == nil && (got == nil || got.id >= 0) {
			b.Fatalf("%s %s: datagram %d to %v went to %v", impl, path, i, w.segs[i].Tuple, got)
		}
	}
	return w
}

// BenchmarkUDPDemux: one datagram per op on every core, each goroutine
// its own receive shard.
func BenchmarkUDPDemux(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"1e2", 100}, {"1e4", 10000}, {"1e6", 1000000}} {
		n := size(sz.n)
		for _, path := range []string{"connected", "bound", "reuseport", "wildcard"} {
			impls := []string{"socktable", "linear", "rwmutex"}
			switch path {
			case "connected":
				impls = append(impls, "floor")
			case "wildcard":
				impls = []string{"socktable"}
			}
			for _, impl := range impls {
				b.Run(fmt.Sprintf("sockets=%s/path=%s/impl=%s", sz.name, path, impl), func(b *testing.B) {
					w := getUDPWorld(b, impl, path, n)
					startTiming(b)
					var start, worker atomic.Int64
					b.RunParallel(func(pb *testing.PB) {
						i, hits := parallelStart(&start, len(w.segs)), 0
						shard := int(worker.Add(1))
						for pb.Next() {
							if w.impl.deliver(&w.segs[i], shard) != nil {
								hits++
							}
							if i++; i == len(w.segs) {
								i = 0
							}
						}
						demuxSink.Add(int64(hits))
					})
				})
			}
		}
	}
}
