package main

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// The simulation: one world per implementation, the scenario's phases run
// on it in order, every phase on all workers (one goroutine per core,
// each its own receive shard), each time-boxed. A phase is a loop of
// rounds; a round is a few segments and the lifecycle calls they trigger
// (a handshake's establish and accept, a close's TIME_WAIT), timed as one
// with the monotonic clock — a 30–80 ns Deliver cannot be timed alone —
// and its cost divided by its segments is one sample of the percentiles.

// roundSegs is the steady phase's round: one DeliverBatch.
const roundSegs = 16

// phaseResult is one phase of one implementation.
type phaseResult struct {
	Phase string `json:"phase"`
	Impl  string `json:"impl"`
	// Unit is what the percentiles are per: "segment", or "connect" for
	// the connect phase (a connect, its three segments and its close).
	Unit     string  `json:"unit"`
	Segments int64   `json:"segments"`
	Rounds   int64   `json:"rounds"`
	Seconds  float64 `json:"seconds"`
	// SegmentsPerSec is Segments over the phase's wall time, all workers
	// together.
	SegmentsPerSec float64 `json:"segments_per_sec"`
	P50            float64 `json:"p50_ns"`
	P99            float64 `json:"p99_ns"`
	P999           float64 `json:"p999_ns"`
	// AllocsPerSegment counts every allocation the timed rounds made
	// (the harness makes none of its own).
	AllocsPerSegment float64 `json:"allocs_per_segment"`
	// HeapBytesPerConn (open phase) is the live heap the tables hold
	// after the open phase (a GC first), over Conns: the host's whole
	// memory, its presized tables included, less the harness's.
	HeapBytesPerConn float64 `json:"heap_bytes_per_conn,omitempty"`
	// Outcomes counts the segments by Deliver's outcome.
	Outcomes map[string]int64 `json:"outcomes"`
	// Opened, Closed: connections the phase opened and closed;
	// ConnectFailures: connects that found no free port.
	Opened          int64 `json:"opened"`
	Closed          int64 `json:"closed"`
	ConnectFailures int64 `json:"connect_failures"`
	// Planned is the phase's fixed work (open: Conns handshakes) and
	// Untimed the part of it the time box left to an untimed fill.
	Planned int64 `json:"planned,omitempty"`
	Untimed int64 `json:"untimed,omitempty"`
	// TimeBoxed: the time box, not the work, ended the phase.
	TimeBoxed bool `json:"time_boxed"`
	// Census is what the tables held at the phase's end; Counters the
	// MIB counters it added (socktable).
	Census   census              `json:"census"`
	Counters *socktable.Counters `json:"counters,omitempty"`
	// Checked connections were each sent a segment after the phase; Lost
	// of them did not reach their owner.
	Checked int      `json:"checked"`
	Lost    int      `json:"lost"`
	Notes   []string `json:"notes,omitempty"`
	// err is the first error a worker met; the phase stopped there.
	err error
}

// world is one implementation's server, with the connections it holds.
type world struct {
	impl    string
	sc      *scenario
	h       host
	workers int
	box     time.Duration
	clockNs float64

	conns []*conn         // the established connections, index i from tuple i
	data  []tuple.Segment // a data segment per connection, shuffled
	order []int32         // data[k] is for conns[order[k]]
	stuck int             // connections queued on the stuck listener
	now   atomic.Int64    // the simulated clock, ns
	// clockMu serializes advance, and holds it off while a handshake is
	// in flight: the simulated clock jumps by up to 64 closes' worth of
	// TIME_WAIT lifetime at once, and a worker descheduled between its SYN
	// and its final ACK while others advanced it saw its request expire
	// (the SYN-ACK retries run out after 63 simulated seconds): a flaky
	// "final ACK ...: listener-rst".
	clockMu sync.RWMutex
	events  atomic.Int64 // closes or connects since the clock's phase began
	// heapBase is the live heap before the host was built: the open
	// phase's heap per connection counts the tables, presized or not.
	heapBase uint64
}

// clientTuple is client i of network 10.net/16, host i/28232, port from
// the ephemeral range: a client address has ~28k ports per destination.
func clientTuple(net byte, i int, local tuple.Endpoint) tuple.Tuple {
	a := i / ephemeralPorts
	return tuple.Tuple{Local: local, Remote: tuple.Endpoint{
		Addr: tuple.AddrFrom4([4]byte{10, net, byte(a >> 8), byte(a)}),
		Port: ephemeralLow + uint16(i%ephemeralPorts),
	}}
}

var serverEP = tuple.Endpoint{Addr: serverAddr, Port: serverPort}

// newWorld builds impl's host and the scenario's connections (not yet
// opened: the open phase does that).
func newWorld(impl string, sc *scenario, workers int, box time.Duration, clockNs float64) (*world, error) {
	w := &world{impl: impl, sc: sc, workers: workers, box: box, clockNs: clockNs}
	w.conns = make([]*conn, sc.Conns)
	w.data = make([]tuple.Segment, sc.Conns)
	w.order = make([]int32, sc.Conns)
	for i := range w.conns {
		w.conns[i] = &conn{t: clientTuple(1, i, serverEP)}
		w.order[i] = int32(i)
	}
	x := uint64(sc.Conns)*0x9e3779b97f4a7c15 | 1
	for i := len(w.order) - 1; i > 0; i-- { // Fisher–Yates, a fixed seed
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		j := int(x % uint64(i+1))
		w.order[i], w.order[j] = w.order[j], w.order[i]
	}
	for k, i := range w.order {
		w.data[k] = segment(w.conns[i].t, tuple.ACK|tuple.PSH, clientISN+1, 1, 100)
	}
	runtime.GC()
	w.heapBase = heapInUse()                   // the harness's own memory is not the tables'
	h, err := newHost(impl, sc.Conns, workers) // presized for the connections; the rest grows
	if err != nil {
		return nil, err
	}
	w.h = h
	return w, nil
}

// worker is one goroutine's state: its index and its buffers, so that
// the rounds allocate nothing of the harness's own.
type worker struct {
	id       int
	segs     []tuple.Segment
	out      []socktable.Result[conn]
	ring     [8]conn // connection structs the churn and connect rounds reuse
	ringNext int
	rng      uint64
	hist     hist
	outcomes [4]int64
	opened   int64
	closed   int64
	failed   int64
	err      error
}

func (wk *worker) next() uint64 {
	wk.rng ^= wk.rng << 13
	wk.rng ^= wk.rng >> 7
	wk.rng ^= wk.rng << 17
	return wk.rng
}

// fresh returns a connection struct of the ring, zeroed: one the demux no
// longer holds (it was closed or aborted rounds ago).
func (wk *worker) fresh() *conn {
	c := &wk.ring[wk.ringNext%len(wk.ring)]
	wk.ringNext++
	*c = conn{}
	return c
}

func (wk *worker) count(res *socktable.Result[conn]) { wk.outcomes[res.Outcome&3]++ }

// round is a phase's body: it does one round on wk and returns its
// segments (0 ends the worker: its share of the work is done).
type round func(wk *worker) int

// run runs body on every worker until each is done or the time box is
// over — and, if must is set, it reports no more work the phase needs —
// and returns the phase's figures.
func (w *world) run(phase, unit string, body round, must func() bool) phaseResult {
	wks := make([]*worker, w.workers)
	for i := range wks {
		wks[i] = &worker{id: i, segs: make([]tuple.Segment, 64), out: make([]socktable.Result[conn], 64),
			rng: uint64(i+1)*0x9e3779b97f4a7c15 | 1}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before) // after the workers' buffers: the harness's own allocations are not counted
	var wg sync.WaitGroup
	var timedOut atomic.Bool
	var segTotal, roundTotal atomic.Int64
	start := time.Now()
	for _, wk := range wks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var segs, rounds int64
			t0 := time.Since(start)
			for {
				n := body(wk)
				if n == 0 || wk.err != nil {
					break
				}
				t1 := time.Since(start)
				per := float64(n)
				if unit == "connect" {
					per = 1
				}
				wk.hist.add(max(float64((t1-t0).Nanoseconds())-w.clockNs, 0) / per)
				segs += int64(n)
				rounds++
				if t1 > w.box && (must == nil || !must()) {
					timedOut.Store(true)
					break
				}
				t0 = t1
			}
			segTotal.Add(segs)
			roundTotal.Add(rounds)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	r := phaseResult{Phase: phase, Impl: w.impl, Unit: unit, Segments: segTotal.Load(), Rounds: roundTotal.Load(),
		Seconds: elapsed.Seconds(), TimeBoxed: timedOut.Load(), Outcomes: map[string]int64{}}
	var all hist
	var outcomes [4]int64
	for _, wk := range wks {
		if wk.err != nil && r.err == nil {
			r.err = wk.err
		}
		all.merge(&wk.hist)
		for i, n := range wk.outcomes {
			outcomes[i] += n
		}
		r.Opened += wk.opened
		r.Closed += wk.closed
		r.ConnectFailures += wk.failed
	}
	for i, n := range outcomes {
		if n > 0 {
			r.Outcomes[socktable.Outcome(i).String()] = n
		}
	}
	r.SegmentsPerSec = float64(r.Segments) / elapsed.Seconds()
	r.P50, r.P99, r.P999 = all.quantile(0.5), all.quantile(0.99), all.quantile(0.999)
	if r.Segments > 0 {
		r.AllocsPerSegment = float64(after.Mallocs-before.Mallocs) / float64(r.Segments)
	}
	return r
}

// phase runs the named phase with its MIB counters and census.
func (w *world) phase(name string) (phaseResult, error) {
	before, _ := w.h.counters()
	var r phaseResult
	var err error
	switch name {
	case "open":
		r, err = w.open()
	case "steady":
		r = w.run("steady", "segment", w.steadyRound(), nil)
	case "churn":
		r, err = w.churn()
	case "synflood":
		r, err = w.synflood()
	case "connect":
		r, err = w.connectPhase()
	default:
		return r, fmt.Errorf("unknown phase %q", name)
	}
	if err == nil {
		err = r.err
	}
	if err != nil {
		return r, fmt.Errorf("%s, %s phase: %w", w.impl, name, err)
	}
	if after, ok := w.h.counters(); ok {
		delta := counterDelta(after, before)
		r.Counters = &delta
	}
	r.Census = w.h.census()
	r.Checked, r.Lost = w.check()
	if w.impl == "linear" && r.TimeBoxed {
		r.Notes = append(r.Notes, "linear scan: sampled within the time box")
	}
	return r, nil
}

// open makes the scenario's connections through the segment path: SYN,
// final ACK, establish and accept, and a first data segment. What the time
// box leaves (a linear scan's handshakes at 1e4+ connections take minutes)
// is filled untimed, the fastest way the implementation allows.
func (w *world) open() (phaseResult, error) {
	next := make([]atomic.Int64, w.workers)
	body := func(wk *worker) int {
		k := int(next[wk.id].Add(1) - 1)
		i := wk.id + k*w.workers
		if i >= len(w.conns) {
			return 0
		}
		c := w.conns[i]
		if _, err := w.handshake(wk, c); err != nil {
			wk.err = err
			return 0
		}
		wk.segs[0] = segment(c.t, tuple.ACK|tuple.PSH, clientISN+1, 1, 100)
		res := w.h.deliver(&wk.segs[0], wk.id)
		wk.count(&res)
		if res.Conn != c {
			wk.err = fmt.Errorf("data segment of %v went to %v", c.t, res.Conn)
			return 0
		}
		wk.opened++
		return 3
	}
	r := w.run("open", "segment", body, nil)
	r.Planned = int64(len(w.conns))
	for id := range w.workers { // the time box's remainder, untimed
		for k := int(next[id].Load()); ; k++ {
			i := id + k*w.workers
			if i >= len(w.conns) {
				break
			}
			if err := w.h.fill(w.conns[i], id); err != nil {
				return r, err
			}
			r.Untimed++
		}
	}
	if r.Untimed > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d handshakes timed; the rest filled directly", r.Planned-r.Untimed, r.Planned))
	}
	runtime.GC()
	r.HeapBytesPerConn = float64(heapInUse()-w.heapBase) / float64(len(w.conns))
	return r, nil
}

// handshake runs c's SYN and final ACK through deliver and establishes
// it, counting the two segments' outcomes on wk.
func (w *world) handshake(wk *worker, c *conn) (uint32, error) {
	w.clockMu.RLock() // no clock jump between the SYN and the final ACK
	defer w.clockMu.RUnlock()
	return handshake(w.h, c, wk.id, wk.segs[:2], wk.count)
}

// handshake runs c's SYN and final ACK through h.deliver, in segs (two
// segments of the caller's, so the segments need not escape), shows each
// result to count if it is set, and establishes the connection; it
// returns our ISS.
func handshake(h host, c *conn, w int, segs []tuple.Segment, count func(*socktable.Result[conn])) (uint32, error) {
	segs[0] = segment(c.t, tuple.SYN, clientISN, 0, 0)
	res := h.deliver(&segs[0], w)
	if count != nil {
		count(&res)
	}
	if res.Reason != socktable.ReasonSynQueued {
		return 0, fmt.Errorf("SYN of %v: %v %v", c.t, res.Outcome, res.Reason)
	}
	iss := res.Reply.Seq
	segs[1] = segment(c.t, tuple.ACK, clientISN+1, iss+1, 0)
	res = h.deliver(&segs[1], w)
	if count != nil {
		count(&res)
	}
	if res.Outcome != socktable.Completed {
		return 0, fmt.Errorf("final ACK of %v: %v %v", c.t, res.Outcome, res.Reason)
	}
	return iss, h.establish(&res, c, w)
}

// steadyRound delivers rounds of roundSegs data segments to established
// connections, each worker from its own place in the shuffled list.
func (w *world) steadyRound() round {
	n := len(w.data)
	return func(wk *worker) int {
		if n < roundSegs {
			return w.sparseRound(wk, roundSegs)
		}
		k := int(wk.next() % uint64(n-roundSegs+1))
		batch := w.data[k : k+roundSegs]
		w.h.deliverBatch(batch, wk.id, wk.out)
		for i := range batch {
			wk.count(&wk.out[i])
		}
		return roundSegs
	}
}

// sparseRound is a round of m data segments when there are fewer
// connections than a batch: random ones, copied into wk's buffer.
func (w *world) sparseRound(wk *worker, m int) int {
	for i := range m {
		wk.segs[i] = w.data[wk.next()%uint64(len(w.data))]
	}
	w.h.deliverBatch(wk.segs[:m], wk.id, wk.out)
	for i := range m {
		wk.count(&wk.out[i])
	}
	return m
}

// dataInto copies m random data segments to wk.segs[at:].
func (w *world) dataInto(wk *worker, at, m int) {
	for i := range m {
		wk.segs[at+i] = w.data[wk.next()%uint64(len(w.data))]
	}
}

// advanceTo moves the simulated clock to now and expires what is due.
func (w *world) advanceTo(now time.Duration) {
	w.clockMu.Lock()
	if int64(now) > w.now.Load() {
		w.now.Store(int64(now))
		w.h.advance(now)
	}
	w.clockMu.Unlock()
}

// churn is nginx's short-lived connections with the server closing first:
// a new client's SYN and final ACK, its request, its ACK of our FIN and
// its FIN, after which the server's socket goes to TIME_WAIT — mixed with
// ChurnData segments to the established connections. The simulated clock
// advances 60 s per TimeWait closes, so TIME_WAIT holds ~TimeWait entries
// as it would with 60 s lifetimes; before the phase, TimeWait entries are
// made (untimed) on the same clock, so the phase starts in the steady
// state.
func (w *world) churn() (phaseResult, error) {
	sc := w.sc
	tw := max(sc.TimeWait, 1)
	tick := tcpTimeWait / time.Duration(tw)
	space := 4*tw + 64*w.workers // tuples are reused long after their TIME_WAIT ended (see perWorker)
	base := time.Duration(w.now.Load())
	for s := range sc.TimeWait { // the steady state's TIME_WAIT entries
		now := base + time.Duration(s)*tick
		if s%64 == 0 {
			w.advanceTo(now)
		}
		c := &conn{t: clientTuple(2, s, serverEP)}
		if err := w.h.fillTimeWait(c, twState(0, 0), now, 0); err != nil {
			return phaseResult{}, err
		}
	}
	w.events.Store(int64(sc.TimeWait))
	// Each worker reuses only its own slots (worker w: w, w+W, w+2W, …),
	// so no two hold one at once however unevenly they run, and a slot
	// comes back after space/W of the worker's own closes: more than
	// TimeWait closes of all workers, so its TIME_WAIT is over.
	perWorker := space / w.workers
	next := make([]int, w.workers)
	for id := range next {
		next[id] = (sc.TimeWait + w.workers - 1) / w.workers // past the prefilled slots
	}
	body := func(wk *worker) int {
		c := wk.fresh()
		c.t = clientTuple(2, wk.id+w.workers*(next[wk.id]%perWorker), serverEP)
		next[wk.id]++
		iss, err := w.handshake(wk, c)
		if err != nil {
			wk.err = err
			return 0
		}
		wk.opened++
		// The request, the client's ACK of our FIN (we answered and closed),
		// its FIN; then the mixed-in traffic.
		wk.segs[0] = segment(c.t, tuple.ACK|tuple.PSH, clientISN+1, iss+1, 100)
		wk.segs[1] = segment(c.t, tuple.ACK, clientISN+101, iss+1+1000+1, 0)
		wk.segs[2] = segment(c.t, tuple.FIN|tuple.ACK, clientISN+101, iss+1+1000+1, 0)
		w.dataInto(wk, 3, sc.ChurnData)
		m := 3 + sc.ChurnData
		w.h.deliverBatch(wk.segs[:m], wk.id, wk.out)
		for i := range m {
			wk.count(&wk.out[i])
		}
		for i := range 3 {
			if wk.out[i].Conn != c {
				wk.err = fmt.Errorf("segment %d of churned %v: %v %v", i, c.t, wk.out[i].Outcome, wk.out[i].Reason)
				return 0
			}
		}
		now := time.Duration(w.now.Load())
		if err := w.h.timeWait(c, twState(clientISN+102, iss+1002), now); err != nil {
			wk.err = err
			return 0
		}
		wk.closed++
		if e := w.events.Add(1); e%64 == 0 {
			w.advanceTo(base + time.Duration(e)*tick)
		}
		return 2 + m
	}
	r := w.run("churn", "segment", body, nil)
	r.Notes = append(r.Notes, fmt.Sprintf("simulated clock: %v per close, %v in all", tick, time.Duration(w.now.Load())-base))
	return r, nil
}

func twState(rcvNxt, sndNxt uint32) timewait.State {
	return timewait.State{RcvNxt: rcvNxt, SndNxt: sndNxt, RcvWnd: 65535}
}

// synflood is a flood of spoofed SYNs, three in four to *:443 (its SYN
// queue fills to the backlog; then socktable answers with SYN cookies) and
// one in four to *:8080, whose application stopped accepting (its accept
// queue is full: the SYNs are dropped), mixed with FloodData segments to
// the established connections.
func (w *world) synflood() (phaseResult, error) {
	sc := w.sc
	// Fill the stuck listener's accept queue: backlog+1 connections.
	fillWk := &worker{segs: make([]tuple.Segment, 4)}
	stuckEP := tuple.Endpoint{Addr: serverAddr, Port: stuckPort}
	for ; w.stuck <= stuckBacklog; w.stuck++ {
		if _, err := w.handshake(fillWk, &conn{t: clientTuple(9, w.stuck, stuckEP)}); err != nil {
			return phaseResult{}, err
		}
	}
	const floodSegs = 12
	var flooded atomic.Int64 // SYNs to *:443
	body := func(wk *worker) int {
		for i := range floodSegs {
			f := wk.next() % uint64(sc.FloodSources)
			local := serverEP
			if i%4 == 3 {
				local = stuckEP
			}
			t := tuple.Tuple{Local: local, Remote: tuple.Endpoint{
				Addr: tuple.AddrFrom4([4]byte{100, 64 | byte(f>>16)&63, byte(f >> 8), byte(f)}),
				Port: 1024 + uint16(f>>22),
			}}
			wk.segs[i] = segment(t, tuple.SYN, uint32(f), 0, 0)
		}
		flooded.Add(floodSegs * 3 / 4)
		w.dataInto(wk, floodSegs, sc.FloodData)
		m := floodSegs + sc.FloodData
		w.h.deliverBatch(wk.segs[:m], wk.id, wk.out)
		for i := range m {
			wk.count(&wk.out[i])
		}
		return m
	}
	// However short the box, socktable's flood goes on until it has filled
	// the SYN queues of *:443 twice over, so that cookies are part of it
	// (the baselines have no SYN queue to fill).
	var must func() bool
	if w.impl == "socktable" {
		must = func() bool { return flooded.Load() < int64(4*reuseportGroup*(serverBacklog+1)) }
	}
	r := w.run("synflood", "segment", body, must)
	r.Notes = append(r.Notes, fmt.Sprintf("%d spoofed sources; simulated clock stands still", sc.FloodSources))
	return r, nil
}

// connectPhase is the host as a client (a proxy to one upstream): connect
// from the server's address, the upstream's SYN-ACK, its response and its
// FIN after ours, and our socket goes to TIME_WAIT. The simulated clock
// advances 60 s per ConnectPressure × 28,232 connects, so that share of
// the ephemeral range is in TIME_WAIT; it is put there first, untimed.
func (w *world) connectPhase() (phaseResult, error) {
	held := int(w.sc.ConnectPressure * float64(ephemeralPorts))
	tick := tcpTimeWait / time.Duration(max(held, 1))
	base := time.Duration(w.now.Load())
	for k := range held {
		now := base + time.Duration(k)*tick
		if k%64 == 0 {
			w.advanceTo(now)
		}
		c := &conn{t: tuple.Tuple{Local: tuple.Endpoint{Addr: serverAddr, Port: ephemeralLow + uint16(k)}, Remote: upstream}}
		if err := w.h.prefillConnect(c, twState(2, 2), now); err != nil {
			return phaseResult{}, err
		}
	}
	w.events.Store(int64(held))
	body := func(wk *worker) int {
		c := wk.fresh()
		now := time.Duration(w.now.Load())
		err := w.h.connect(c, serverAddr, upstream, uint32(wk.next()))
		if e := w.events.Add(1); e%16 == 0 {
			w.advanceTo(base + time.Duration(e)*tick)
		}
		if errors.Is(err, errNoPort) {
			wk.failed++
			return 1 // a round all the same: a failed connect is the costly kind
		}
		if err != nil {
			wk.err = err
			return 0
		}
		wk.opened++
		wk.segs[0] = segment(c.t, tuple.SYN|tuple.ACK, 5000, 1, 0)
		wk.segs[1] = segment(c.t, tuple.ACK|tuple.PSH, 5001, 1, 1000)
		wk.segs[2] = segment(c.t, tuple.FIN|tuple.ACK, 6001, 2, 0)
		w.h.deliverBatch(wk.segs[:3], wk.id, wk.out)
		for i := range 3 {
			wk.count(&wk.out[i])
			if wk.out[i].Conn != c {
				wk.err = fmt.Errorf("segment %d of connection %v: %v %v", i, c.t, wk.out[i].Outcome, wk.out[i].Reason)
				return 0
			}
		}
		if err := w.h.timeWait(c, twState(6002, 2), now); err != nil {
			wk.err = err
			return 0
		}
		wk.closed++
		return 3
	}
	r := w.run("connect", "connect", body, nil)
	r.Notes = append(r.Notes, fmt.Sprintf("%d of %d ephemeral ports held in TIME_WAIT; simulated clock %v per connect", held, ephemeralPorts, tick))
	return r, nil
}

// check sends every established connection (a linear scan: a sample of
// 2,000) a data segment and counts those that did not reach their owner.
func (w *world) check() (checked, lost int) {
	step := 1
	if w.impl == "linear" && len(w.conns) > 2000 {
		step = len(w.conns) / 2000
	}
	seg := new(tuple.Segment)
	for i := 0; i < len(w.conns); i += step {
		*seg = segment(w.conns[i].t, tuple.ACK, clientISN+1, 1, 0)
		if w.h.deliver(seg, 0).Conn != w.conns[i] {
			lost++
		}
		checked++
	}
	return checked, lost
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// counterDelta is a - b, field by field (every field, so a counter the
// Demux gains is never left out).
func counterDelta(a, b socktable.Counters) socktable.Counters {
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(b)
	for i := range va.NumField() {
		va.Field(i).SetUint(va.Field(i).Uint() - vb.Field(i).Uint())
	}
	return a
}
