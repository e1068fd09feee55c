package socktable_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// BenchmarkDemuxFacade measures what the facade costs over the table it
// wraps: Deliver of a data segment to an established connection
// (impl=socktable) against LookupHashed of the same flows on the same
// Demux's own established table, hashes computed beforehand (impl=floor)
// or in the loop (impl=floor-hash). The comparative benchmarks against
// other designs are in bench/ (BenchmarkDemux).
func BenchmarkDemuxFacade(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{{"1e2", 100}, {"1e4", 10000}, {"1e6", 1000000}}
	if os.Getenv("SOCKTABLE_BENCH_SHORT") != "" {
		sizes = sizes[:2]
	}
	for _, sz := range sizes {
		d, segs := facadeDemux(b, sz.n)
		hashes := make([]uint64, len(segs))
		for i := range segs {
			hashes[i] = d.Hasher().Hash(segs[i].Tuple)
		}
		for _, impl := range []string{"socktable", "floor", "floor-hash"} {
			b.Run(fmt.Sprintf("sockets=%s/impl=%s", sz.name, impl), func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				var start, sink, worker atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i, hits := int(start.Add(7919))%len(segs), 0
					shard := int(worker.Add(1)) // each goroutine its receive shard, as a stack's are
					for pb.Next() {
						var ok bool
						switch impl {
						case "socktable":
							ok = d.Deliver(&segs[i], 0, shard).Conn != nil
						case "floor":
							ok = d.EstablishedLookupHashed(hashes[i], segs[i].Tuple)
						default:
							ok = d.EstablishedLookupHashed(d.Hasher().Hash(segs[i].Tuple), segs[i].Tuple)
						}
						if ok {
							hits++
						}
						if i++; i == len(segs) {
							i = 0
						}
					}
					sink.Add(int64(hits))
				})
				if int(sink.Load()) != b.N {
					b.Fatalf("%d hits of %d", sink.Load(), b.N)
				}
			})
		}
		_ = d.Close()
	}
}

// facadeDemux returns a Demux holding n connections accepted by a
// listener on 192.0.2.1:443, and a data segment of each, shuffled.
func facadeDemux(b *testing.B, n int) (*socktable.Demux[tconn], []tuple.Segment) {
	d, err := socktable.NewDemux[tconn](socktable.Options{Clock: &timewait.ManualClock{}, Capacity: n})
	if err != nil {
		b.Fatal(err)
	}
	lb, err := d.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("0.0.0.0"), Port: 443})
	if err != nil {
		b.Fatal(err)
	}
	l, err := d.Listen(lb, socktable.ListenOptions{Backlog: 128})
	if err != nil {
		b.Fatal(err)
	}
	acc, err := l.Register(accept.Unbound)
	if err != nil {
		b.Fatal(err)
	}
	local := tuple.MustEndpoint("192.0.2.1:443")
	segs := make([]tuple.Segment, n)
	for i := range n {
		t := tuple.Tuple{Local: local, Remote: tuple.Endpoint{
			Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: uint16(1024 + i%50000)}}
		syn := tuple.Segment{Tuple: t, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, Seq: 1000, Window: 65535}
		res := d.Deliver(&syn, 0, 0)
		ack := syn
		ack.Flags, ack.Seq, ack.Ack = tuple.ACK, 1001, res.Reply.Seq+1
		res = d.Deliver(&ack, 0, 0)
		if _, err := d.Establish(&res.Handshake, &tconn{id: i}); err != nil {
			b.Fatal(err)
		}
		if _, err := acc.TryAccept(); err != nil {
			b.Fatal(err)
		}
		ack.Flags |= tuple.PSH
		segs[i] = ack
	}
	rand.New(rand.NewPCG(uint64(n), 3)).Shuffle(n, func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
	for i := range segs { // one untimed pass: fresh memory runs slow at first
		d.Deliver(&segs[i], 0, 0)
	}
	return d, segs
}
