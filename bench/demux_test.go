package bench

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/bench/internal/basedemux"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// The Demux benchmarks: a server with one wildcard listener on :443 (and
// a few more listeners on other ports) holding n sockets, three quarters
// established and one quarter in TIME_WAIT, all reached through the
// listener's handshake. The baselines are the same demux over other
// designs (package bench/internal/basedemux); floor is the established table's
// LookupHashed alone on a table of the established flows, with the hashes
// computed beforehand (floor-hash computes them in the loop, as Deliver
// must).
var (
	demuxImpls      = []string{"socktable", "linear", "rwmutex", "syncmap", "xsync"}
	demuxChurnImpls = []string{"socktable", "rwmutex", "syncmap", "xsync"}
)

// demuxConn is the benchmarks' connection handle.
type demuxConn struct {
	id   int
	flow socktable.Flow
}

// The TIME_WAIT entries' state, and the retransmitted FIN they answer.
const (
	twRcvNxt, twSndNxt = 2000, 5000
	synSeq             = 1000
	acceptShards       = 16
)

func demuxSeg(t tuple.Tuple, flags tuple.Flags, seq, ack uint32) tuple.Segment {
	return tuple.Segment{Tuple: t, Proto: tuple.ProtoTCP, Version: 4, Flags: flags, Seq: seq, Ack: ack, Window: 65535}
}

// demuxFixture is the segments the benchmarks send for n sockets: data
// ACKs to the established flows and retransmitted FINs to the TIME_WAIT
// ones, each in shuffled order.
type demuxFixture struct {
	n, established int
	conns          []*demuxConn
	estSegs        []tuple.Segment
	twSegs         []tuple.Segment
}

var (
	demuxFixtureMu sync.Mutex
	demuxFixtures  = map[int]*demuxFixture{}
)

func getDemuxFixture(n int) *demuxFixture {
	demuxFixtureMu.Lock()
	defer demuxFixtureMu.Unlock()
	if f := demuxFixtures[n]; f != nil {
		return f
	}
	clear(demuxFixtures)
	f := &demuxFixture{n: n, established: n - n/4, conns: make([]*demuxConn, n)}
	for i := range n {
		f.conns[i] = &demuxConn{id: i}
		if i < f.established {
			f.estSegs = append(f.estSegs, demuxSeg(flowKey(i), tuple.ACK|tuple.PSH, synSeq+1, 1))
		} else {
			f.twSegs = append(f.twSegs, demuxSeg(flowKey(i), tuple.FIN|tuple.ACK, twRcvNxt-1, twSndNxt))
		}
	}
	r := rand.New(rand.NewPCG(uint64(n), 2))
	r.Shuffle(len(f.estSegs), func(i, j int) { f.estSegs[i], f.estSegs[j] = f.estSegs[j], f.estSegs[i] })
	r.Shuffle(len(f.twSegs), func(i, j int) { f.twSegs[i], f.twSegs[j] = f.twSegs[j], f.twSegs[i] })
	demuxFixtures[n] = f
	return f
}

// demuxWorld is one implementation's demux holding a fixture's sockets.
type demuxWorld struct {
	st            *socktable.Demux[demuxConn]
	listener      *socktable.Listener[demuxConn]
	base          *basedemux.Demux[demuxConn]
	floor         *table.Established[*demuxConn]
	floorHashes   []uint64
	bytesPerEntry float64
}

// otherListeners are the server's other services, so the listener index
// is not a single entry.
var otherListeners = []uint16{22, 25, 80, 110, 143, 993, 995, 3306, 5432, 6379, 8080, 8443, 9000, 9090, 11211}

func buildDemuxWorld(b *testing.B, impl string, f *demuxFixture) *demuxWorld {
	before := heapBytes()
	w := &demuxWorld{}
	switch impl {
	case "socktable":
		w.buildSocktable(b, f)
	case "floor", "floor-hash":
		st, err := table.NewEstablished[*demuxConn](table.EstablishedOptions{Capacity: f.established})
		if err != nil {
			b.Fatal(err)
		}
		for i := range f.established {
			if err := st.Insert(flowKey(i), f.conns[i]); err != nil {
				b.Fatal(err)
			}
		}
		w.floor = st
		w.floorHashes = make([]uint64, len(f.estSegs))
		for i := range f.estSegs {
			w.floorHashes[i] = st.Hasher().Hash(f.estSegs[i].Tuple)
		}
	default:
		w.buildBaseline(b, impl, f)
	}
	w.bytesPerEntry = float64(heapBytes()-before) / float64(f.n)
	return w
}

// buildSocktable makes every socket the way a server gets it: SYN, the
// final ACK, Establish, accept; and closes a quarter into TIME_WAIT.
func (w *demuxWorld) buildSocktable(b *testing.B, f *demuxFixture) {
	d, err := socktable.NewDemux[demuxConn](socktable.Options{Clock: &timewait.ManualClock{},
		Capacity: f.n, MaxTimeWait: f.n})
	if err != nil {
		b.Fatal(err)
	}
	w.st = d
	listen := func(addr tuple.Addr, port uint16, backlog, shards int) *socktable.Listener[demuxConn] {
		lb, err := d.Bind(table.BindRequest{Family: 4, Addr: addr, Port: port})
		if err != nil {
			b.Fatal(err)
		}
		l, err := d.Listen(lb, socktable.ListenOptions{Backlog: backlog, Shards: shards})
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	w.listener = listen(tuple.MustAddr("0.0.0.0"), serverEndpoint.Port, 4096, acceptShards)
	for _, p := range otherListeners {
		listen(serverEndpoint.Addr, p, 128, 1)
	}
	acc, err := w.listener.Register(accept.Unbound)
	if err != nil {
		b.Fatal(err)
	}
	defer acc.Close()
	for i := range f.n {
		t := flowKey(i)
		syn := demuxSeg(t, tuple.SYN, synSeq, 0)
		res := d.Deliver(&syn, 0, 0)
		ack := demuxSeg(t, tuple.ACK, synSeq+1, res.Reply.Seq+1)
		res = d.Deliver(&ack, 0, 0)
		if res.Outcome != socktable.Completed {
			b.Fatalf("flow %d: %v %v", i, res.Outcome, res.Reason)
		}
		c := f.conns[i]
		if c.flow, err = d.Establish(&res.Handshake, c); err != nil {
			b.Fatal(err)
		}
		if _, err := acc.TryAccept(); err != nil {
			b.Fatal(err)
		}
		if i >= f.established {
			if err := d.TimeWait(c.flow, c, timewait.State{RcvNxt: twRcvNxt, SndNxt: twSndNxt, RcvWnd: 65535}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// buildBaseline fills a baseline with the same sockets (straight into its
// tables: a linear scan's inserts would take hours at 1e6).
func (w *demuxWorld) buildBaseline(b *testing.B, impl string, f *demuxFixture) {
	d, err := basedemux.New[demuxConn](impl, f.n)
	if err != nil {
		b.Fatal(err)
	}
	w.base = d
	d.Listen(tuple.Endpoint{Port: serverEndpoint.Port}, 1460, 65535)
	for _, p := range otherListeners {
		d.Listen(tuple.Endpoint{Addr: serverEndpoint.Addr, Port: p}, 1460, 65535)
	}
	for i := range f.n {
		if i < f.established {
			d.Fill(flowKey(i), f.conns[i])
		} else {
			d.FillTimeWait(flowKey(i), basedemux.TimeWaitState{RcvNxt: twRcvNxt, SndNxt: twSndNxt, Window: 65535}, -1)
		}
	}
}

// deliver is a world's Deliver (for checks and the churn mix, where a
// switch per op is noise beside the writes; the timed loops of the
// read paths call each design directly).
func (w *demuxWorld) deliver(seg *tuple.Segment, shard int) socktable.Result[demuxConn] {
	if w.st != nil {
		return w.st.Deliver(seg, 0, shard)
	}
	return w.base.Deliver(seg)
}

// checkSameResult fails b unless the world answers one segment of each
// path as socktable does: the baselines are the same demux.
func (w *demuxWorld) checkSameResult(b *testing.B, f *demuxFixture) {
	if w.floor != nil {
		return
	}
	est := f.estSegs[0]
	if r := w.deliver(&est, 0); r.Outcome != socktable.ToConn || r.Reason != socktable.ReasonEstablished ||
		r.Conn != f.conns[int(flowIndex(est.Tuple))] {
		b.Fatalf("established: %v %v %v", r.Outcome, r.Reason, r.Conn)
	}
	tw := f.twSegs[0]
	if r := w.deliver(&tw, 0); r.Outcome != socktable.Send || r.Reason != socktable.ReasonTimeWait ||
		r.Reply.Flags != tuple.ACK || r.Reply.Seq != twSndNxt || r.Reply.Ack != twRcvNxt || r.Reply.Window != 65535 {
		b.Fatalf("timewait: %v %v %+v", r.Outcome, r.Reason, r.Reply)
	}
	t := flowKey(3 * f.n)
	syn, rst := demuxSeg(t, tuple.SYN, synSeq, 0), demuxSeg(t, tuple.RST, synSeq+1, 0)
	if r := w.deliver(&syn, 0); r.Outcome != socktable.Send || r.Reason != socktable.ReasonSynQueued ||
		r.Reply.Flags != tuple.SYN|tuple.ACK || r.Reply.Ack != synSeq+1 || r.Reply.MSS != 1460 || r.Reply.Window != 65535 {
		b.Fatalf("syn: %v %v %+v", r.Outcome, r.Reason, r.Reply)
	}
	if r := w.deliver(&rst, 0); r.Outcome != socktable.Dropped || r.Reason != socktable.ReasonEmbryonicReset {
		b.Fatalf("rst: %v %v", r.Outcome, r.Reason)
	}
	if r := w.deliver(&syn, 0); r.Reason != socktable.ReasonSynQueued {
		b.Fatalf("syn after rst: %v", r.Reason)
	}
	w.deliver(&rst, 0)
}

// warm delivers every established flow's segment once, untimed: on this
// project's virtual machines the first timed run after a build ran at
// half speed (fresh memory), and whichever run came first paid for it.
func (w *demuxWorld) warm(f *demuxFixture) {
	segs := f.estSegs
	if w.base != nil && w.base.Impl() == "linear" && len(segs) > 100000 {
		segs = segs[:1000] // a scan of 1e6 flows per segment: a sample is enough
	}
	hits := 0
	for i := range segs {
		if w.floor != nil {
			if _, ok := w.floor.LookupHashed(w.floorHashes[i], segs[i].Tuple); ok {
				hits++
			}
		} else if w.deliver(&segs[i], 0).Conn != nil {
			hits++
		}
	}
	demuxSink.Add(int64(hits))
}

// flowIndex inverts flowKey for the flows the fixture holds (below 2^24).
func flowIndex(t tuple.Tuple) uint32 {
	a := t.Remote.Addr.As16()
	return uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
}

var (
	demuxWorldMu    sync.Mutex
	demuxWorldSize  int
	demuxWorldCache = map[string]*demuxWorld{}
)

// getDemuxWorld returns impl's world for n sockets, built once per size
// and shared by every path and -cpu value.
func getDemuxWorld(b *testing.B, impl string, n int) (*demuxWorld, *demuxFixture) {
	demuxWorldMu.Lock()
	defer demuxWorldMu.Unlock()
	f := getDemuxFixture(n)
	if demuxWorldSize != n {
		for _, w := range demuxWorldCache {
			if w.st != nil {
				_ = w.st.Close()
			}
		}
		clear(demuxWorldCache)
		demuxWorldSize = n
	}
	key := impl
	if impl == "floor-hash" {
		key = "floor" // the same table
	}
	w := demuxWorldCache[key]
	if w == nil {
		w = buildDemuxWorld(b, key, f)
		w.checkSameResult(b, f)
		w.warm(f)
		demuxWorldCache[key] = w
	}
	return w, f
}

var demuxSink atomic.Int64 // sink for results

// parallelStart spreads the goroutines' starting points over probes.
func parallelStart(start *atomic.Int64, n int) int { return int(start.Add(7919)) % n }

// BenchmarkDemux: one Deliver per op on every core. path=established is
// a data segment to an established connection (pre-parsed, shuffled
// order); syn a SYN to the listener and the RST that resets its request
// (established and TIME_WAIT misses, the listener lookup, a request
// inserted and removed: one op is the pair); timewait a retransmitted FIN
// to a TIME_WAIT entry, re-ACKed.
func BenchmarkDemux(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"1e2", 100}, {"1e4", 10000}, {"1e6", 1000000}} {
		n := size(sz.n)
		for _, path := range []string{"established", "syn", "timewait"} {
			impls := demuxImpls
			if path == "established" {
				impls = append([]string{"socktable", "floor", "floor-hash"}, demuxImpls[1:]...)
			}
			for _, impl := range impls {
				b.Run(fmt.Sprintf("sockets=%s/path=%s/impl=%s", sz.name, path, impl), func(b *testing.B) {
					w, f := getDemuxWorld(b, impl, n)
					startTiming(b)
					switch path {
					case "established":
						runDemuxEstablished(b, w, f, impl)
					case "syn":
						runDemuxSyn(b, w, f)
					default:
						runDemuxSegments(b, w, f.twSegs)
					}
					b.ReportMetric(w.bytesPerEntry, "B/entry")
				})
			}
		}
	}
}

func runDemuxEstablished(b *testing.B, w *demuxWorld, f *demuxFixture, impl string) {
	segs := f.estSegs
	var start atomic.Int64
	if w.floor == nil {
		runDemuxSegments(b, w, segs)
		return
	}
	st, hashes, rehash := w.floor, w.floorHashes, impl == "floor-hash"
	b.RunParallel(func(pb *testing.PB) {
		i, hits := parallelStart(&start, len(segs)), 0
		for pb.Next() {
			h := hashes[i]
			if rehash {
				h = st.Hasher().Hash(segs[i].Tuple)
			}
			if _, ok := st.LookupHashed(h, segs[i].Tuple); ok {
				hits++
			}
			if i++; i == len(segs) {
				i = 0
			}
		}
		demuxSink.Add(int64(hits))
	})
}

// runDemuxSegments delivers segs round robin, one per op.
func runDemuxSegments(b *testing.B, w *demuxWorld, segs []tuple.Segment) {
	var start, worker atomic.Int64
	if d := w.st; d != nil {
		b.RunParallel(func(pb *testing.PB) {
			i, sent := parallelStart(&start, len(segs)), 0
			shard := int(worker.Add(1)) // each goroutine its receive shard, as a stack's are
			for pb.Next() {
				if d.Deliver(&segs[i], 0, shard).Outcome != socktable.Dropped {
					sent++
				}
				if i++; i == len(segs) {
					i = 0
				}
			}
			demuxSink.Add(int64(sent))
		})
		return
	}
	d := w.base
	b.RunParallel(func(pb *testing.PB) {
		i, sent := parallelStart(&start, len(segs)), 0
		for pb.Next() {
			if d.Deliver(&segs[i]).Outcome != socktable.Dropped {
				sent++
			}
			if i++; i == len(segs) {
				i = 0
			}
		}
		demuxSink.Add(int64(sent))
	})
}

// synFlows is how many client flows each goroutine of the SYN benchmark
// cycles through (each reset before its next SYN).
const synFlows = 1 << 16

func runDemuxSyn(b *testing.B, w *demuxWorld, f *demuxFixture) {
	var worker atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		g := int(worker.Add(1))
		base := f.n + g*synFlows // flows no socket holds
		j, queued := 0, 0
		for pb.Next() {
			t := flowKey(base + j)
			syn, rst := demuxSeg(t, tuple.SYN, synSeq, 0), demuxSeg(t, tuple.RST, synSeq+1, 0)
			if w.deliver(&syn, g).Reason == socktable.ReasonSynQueued {
				queued++
			}
			w.deliver(&rst, g)
			if j++; j == synFlows {
				j = 0
			}
		}
		demuxSink.Add(int64(queued))
	})
}

// BenchmarkDemuxBatch: the established path at 1e6 sockets per segment,
// one Deliver each (batch=1) or DeliverBatch of 16.
func BenchmarkDemuxBatch(b *testing.B) {
	n := size(1000000)
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("sockets=1e6/batch=%d/impl=socktable", batch), func(b *testing.B) {
			w, f := getDemuxWorld(b, "socktable", n)
			d, segs := w.st, f.estSegs
			startTiming(b)
			var start, worker atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := parallelStart(&start, len(segs)-16)
				shard := int(worker.Add(1))
				out := make([]socktable.Result[demuxConn], 16)
				hits, pending := 0, 0
				for pb.Next() {
					if batch == 1 {
						if d.Deliver(&segs[i], 0, shard).Conn != nil {
							hits++
						}
						if i++; i == len(segs) {
							i = 0
						}
						continue
					}
					if pending++; pending < 16 {
						continue
					}
					pending = 0
					hits += d.DeliverBatch(segs[i:i+16], 0, shard, out)
					if i += 16; i+16 > len(segs) {
						i = 0
					}
				}
				demuxSink.Add(int64(hits))
			})
		})
	}
}

// BenchmarkDemuxChurn: connections open, exchange and close among the
// lookups, at 1e6 sockets on every core. Each goroutine repeats a cycle
// of 16 ops: a SYN from a new client, its final ACK (the handshake
// completed: Establish, and for socktable the accept), a data segment to
// the new connection, 12 data segments to established connections, and
// an abort (RST) of the new connection.
func BenchmarkDemuxChurn(b *testing.B) {
	n := size(1000000)
	for _, impl := range demuxChurnImpls {
		b.Run(fmt.Sprintf("sockets=1e6/impl=%s", impl), func(b *testing.B) {
			w, f := getDemuxWorld(b, impl, n)
			startTiming(b)
			var worker, start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				g := int(worker.Add(1))
				shard := g % acceptShards
				var acc *accept.Acceptor[socktable.Accepted[demuxConn]]
				if w.st != nil {
					var err error
					if acc, err = w.listener.Register(shard); err != nil {
						b.Error(err)
						return
					}
					defer acc.Close()
				}
				base := 2*f.n + g*synFlows
				segs := f.estSegs
				i, j, step, done := parallelStart(&start, len(segs)), 0, 0, 0
				c := &demuxConn{id: -g}
				var t tuple.Tuple
				var iss uint32
				for pb.Next() {
					switch step {
					case 0:
						t = flowKey(base + j)
						syn := demuxSeg(t, tuple.SYN, synSeq, 0)
						iss = w.deliver(&syn, shard).Reply.Seq
					case 1:
						ack := demuxSeg(t, tuple.ACK, synSeq+1, iss+1)
						res := w.deliver(&ack, shard)
						if w.st != nil {
							flow, err := w.st.Establish(&res.Handshake, c)
							if err != nil {
								b.Error(err)
								return
							}
							c.flow = flow
							if _, err := acc.TryAccept(); err != nil {
								b.Error(err)
								return
							}
						} else if !w.base.Establish(t, c) {
							b.Error("establish failed")
							return
						}
					case 2:
						data := demuxSeg(t, tuple.ACK|tuple.PSH, synSeq+1, iss+1)
						if w.deliver(&data, shard).Conn == c {
							done++
						}
					case 15:
						if w.st != nil {
							if err := w.st.Abort(c.flow, c); err != nil {
								b.Error(err)
								return
							}
						} else if !w.base.Abort(t, c) {
							b.Error("abort failed")
							return
						}
						if j++; j == synFlows {
							j = 0
						}
					default:
						if w.deliver(&segs[i], shard).Conn != nil {
							done++
						}
						if i++; i == len(segs) {
							i = 0
						}
					}
					step = (step + 1) % 16
				}
				// Leave the world as it was: the cycle's connection goes.
				switch {
				case step == 1:
					rst := demuxSeg(t, tuple.RST, synSeq+1, 0)
					w.deliver(&rst, shard)
				case step > 1 && w.st != nil:
					_ = w.st.Abort(c.flow, c)
				case step > 1:
					w.base.Abort(t, c)
				}
				demuxSink.Add(int64(done))
			})
			b.ReportMetric(w.bytesPerEntry, "B/entry")
		})
	}
}
