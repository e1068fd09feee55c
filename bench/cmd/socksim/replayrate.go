package main

import (
	"fmt"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/bench/internal/basedemux"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// The replay rate: the checked replay records a script — every segment as
// it reached the Demux, and every lifecycle call the trace made the
// replayer take — which is then run again, untracked, through
// DeliverBatch of a fresh Demux and through the baselines' demuxes, and
// timed. Sequence numbers are kept in the kernel's space and rewritten
// as the replay did, against the ISNs each run's own demux chose.

type opKind uint8

const (
	opDeliver  opKind = iota
	opConnect         // the client end connects (its port: the kernel's)
	opAbort           // the end's connection goes at once
	opTimeWait        // the end's connection goes to TIME_WAIT
	opOffset          // the end's ISN in the kernel's space is known: kernelISS
)

// scriptOp is one step of a recorded replay. End numbers are one-based (0:
// none).
type scriptOp struct {
	kind opKind
	at   time.Duration
	seg  tuple.Segment // opDeliver: Ack in the kernel's space if rewrite
	end  int           // the lifecycle op's end
	// opDeliver: rewrite is the server end whose offset the Ack is
	// rewritten by; synOf the end whose ISN the reply to this SYN sets;
	// establishAt the end a Completed result establishes.
	rewrite, synOf, establishAt int
	// opConnect: the flow (Local the client end); family 4 or 6.
	t      tuple.Tuple
	family int
	// opOffset: the kernel's ISN; opTimeWait: the state, SndNxt in the
	// kernel's space.
	kernelISS uint32
	st        timewait.State
}

// needsResult: the run must see this segment's result before the next
// segment goes in (it sets an ISN or establishes a connection).
func (op *scriptOp) needsResult() bool { return op.synOf != 0 || op.establishAt != 0 }

// script records the ops of a replay.
type script struct {
	ops  []scriptOp
	ends map[*end]int
}

func (s *script) endID(e *end) int {
	if id, ok := s.ends[e]; ok {
		return id
	}
	if s.ends == nil {
		s.ends = map[*end]int{}
	}
	s.ends[e] = len(s.ends) + 1
	return s.ends[e]
}

func (s *script) add(op scriptOp) { s.ops = append(s.ops, op) }

// last is the latest deliver op, for the flags the replayer learns after
// delivering (nil if the latest op is not a delivery).
func (s *script) last() *scriptOp {
	if n := len(s.ops); n > 0 && s.ops[n-1].kind == opDeliver {
		return &s.ops[n-1]
	}
	return nil
}

// replayHost is a demux the script runs on.
type replayHost interface {
	deliverBatch(segs []tuple.Segment, out []socktable.Result[rconn])
	establish(res *socktable.Result[rconn], c *rconn) bool
	connect(t tuple.Tuple, family int, c *rconn) bool
	abort(c *rconn)
	timeWait(c *rconn, st timewait.State)
	advance(now time.Duration)
	close()
}

// runScript plays ops on h in DeliverBatch runs of up to 16 segments (a
// run ends early at a segment whose result the next ones depend on) and
// returns the time it took, and the part of it spent in deliverBatch
// (timed around each call, less clockNs per clock read).
func runScript(ops []scriptOp, ends int, h replayHost, clockNs float64) (total, delivering time.Duration) {
	off := make([]uint32, ends+1)
	iss := make([]uint32, ends+1)
	conns := make([]*rconn, ends+1)
	var segs [16]tuple.Segment
	var out [16]socktable.Result[rconn]
	var now time.Duration
	ids := 0
	start := time.Now()
	for i := 0; i < len(ops); {
		op := &ops[i]
		if op.at > now+time.Millisecond || op.at < now {
			now = op.at
			h.advance(now)
		}
		switch op.kind {
		case opConnect:
			ids++
			c := &rconn{id: ids}
			if h.connect(op.t, op.family, c) {
				conns[op.end] = c
			}
			i++
			continue
		case opAbort:
			if c := conns[op.end]; c != nil {
				h.abort(c)
				conns[op.end] = nil
			}
			i++
			continue
		case opTimeWait:
			if c := conns[op.end]; c != nil {
				st := op.st
				st.SndNxt -= off[op.end]
				h.timeWait(c, st)
				conns[op.end] = nil
			}
			i++
			continue
		case opOffset:
			off[op.end] = op.kernelISS - iss[op.end]
			i++
			continue
		}
		n := 0
		for j := i; j < len(ops) && ops[j].kind == opDeliver && n < len(segs); j++ {
			segs[n] = ops[j].seg
			if r := ops[j].rewrite; r != 0 {
				segs[n].Ack -= off[r]
			}
			n++
			if ops[j].needsResult() {
				break
			}
		}
		t0 := time.Now()
		h.deliverBatch(segs[:n], out[:n])
		delivering += time.Since(t0) - time.Duration(clockNs)
		for k := range n {
			op := &ops[i+k]
			res := &out[k]
			if op.synOf != 0 && res.Outcome == socktable.Send && res.Reply.Flags&tuple.SYN != 0 {
				iss[op.synOf] = res.Reply.Seq
			}
			if op.establishAt != 0 && res.Outcome == socktable.Completed {
				ids++
				c := &rconn{id: ids}
				if h.establish(res, c) {
					conns[op.establishAt] = c
				}
			}
		}
		i += n
	}
	return time.Since(start), delivering
}

// replayRates runs the script through a fresh socktable Demux and each
// baseline, each again until 300 ms have been timed (at least twice),
// and returns segments per second by implementation, of the whole script
// and of DeliverBatch alone. Every socktable run
// must end with the checked replay's counters (want): the script is the
// replay, not an approximation of it.
func replayRates(sc *script, specs []listenerSpec, want socktable.Counters) (whole, delivering map[string]float64, err error) {
	segments := 0
	for i := range sc.ops {
		if sc.ops[i].kind == opDeliver {
			segments++
		}
	}
	whole, delivering = map[string]float64{}, map[string]float64{}
	clockNs := clockCost()
	for _, impl := range knownImpls {
		var total, inDeliver time.Duration
		runs := 0
		for runs < 2 || total < 300*time.Millisecond {
			h, err := newReplayHost(impl, specs)
			if err != nil {
				return nil, nil, err
			}
			t, d := runScript(sc.ops, len(sc.ends), h, clockNs)
			total, inDeliver = total+t, inDeliver+d
			if st, ok := h.(*stReplay); ok {
				got := st.d.Counters()
				if got.Delivered != want.Delivered || got.Answered != want.Answered || got.Resets != want.Resets || got.Dropped != want.Dropped {
					h.close()
					return nil, nil, fmt.Errorf("the timed rerun of the replay diverged from it: counters %+v, the replay's %+v", got, want)
				}
			}
			h.close()
			runs++
		}
		whole[impl] = float64(segments*runs) / total.Seconds()
		delivering[impl] = float64(segments*runs) / inDeliver.Seconds()
	}
	return whole, delivering, nil
}

func newReplayHost(impl string, specs []listenerSpec) (replayHost, error) {
	if impl == "socktable" {
		clock := &timewait.ManualClock{}
		d, err := socktable.NewDemux[rconn](socktable.Options{Clock: clock, Capacity: 1 << 12, AcceptShards: 1})
		if err != nil {
			return nil, err
		}
		r := &replayer{d: d, clock: clock, listeners: map[tuple.Endpoint]int{}, groupOf: map[*socktable.Listener[rconn]]int{},
			acceptors: map[*socktable.Listener[rconn]]*accept.Acceptor[socktable.Accepted[rconn]]{}, rep: &replayReport{}}
		for g, s := range specs {
			if err := r.listen(g, s); err != nil {
				d.Close()
				return nil, err
			}
		}
		return (*stReplay)(r), nil
	}
	d, err := basedemux.New[rconn](impl, 1<<12)
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		addr, err := specAddr(s)
		if err != nil {
			return nil, err
		}
		d.Listen(tuple.Endpoint{Addr: addr, Port: s.Port}, 1460, 65535)
	}
	return &baseReplay{d: d}, nil
}

// stReplay runs the script on socktable: the replayer's Demux, listeners
// and acceptors, none of its tracking.
type stReplay replayer

func (h *stReplay) deliverBatch(segs []tuple.Segment, out []socktable.Result[rconn]) {
	h.d.DeliverBatch(segs, 0, 0, out)
}

func (h *stReplay) establish(res *socktable.Result[rconn], c *rconn) bool {
	fl, err := h.d.Establish(&res.Handshake, c)
	if err != nil {
		return false
	}
	c.flow = fl
	if a := h.acceptors[res.Handshake.Listener]; a != nil {
		_, _ = a.TryAccept()
	}
	return true
}

func (h *stReplay) connect(t tuple.Tuple, family int, c *rconn) bool {
	b, err := h.d.Bind(table.BindRequest{Family: family, Addr: t.Local.Addr, Port: t.Local.Port, ReuseAddr: true, Owner: 2})
	if err != nil {
		return false
	}
	if c.flow, err = h.d.ConnectBound(b, t.Local.Addr, t.Remote, c); err != nil {
		_ = h.d.Ports().Release(b)
		return false
	}
	return true
}

func (h *stReplay) abort(c *rconn) { _ = h.d.Abort(c.flow, c) }

func (h *stReplay) timeWait(c *rconn, st timewait.State) {
	st.TSRecentStamp = h.clock.Now()
	_ = h.d.TimeWait(c.flow, c, st)
}

func (h *stReplay) advance(now time.Duration) {
	h.clock.Set(now)
	h.d.Advance()
}

func (h *stReplay) close() { _ = h.d.Close() }

// baseReplay runs the script on a baseline demux.
type baseReplay struct {
	d   *basedemux.Demux[rconn]
	now time.Duration
}

func (h *baseReplay) deliverBatch(segs []tuple.Segment, out []socktable.Result[rconn]) {
	for i := range segs {
		out[i] = h.d.Deliver(&segs[i])
	}
}

func (h *baseReplay) establish(res *socktable.Result[rconn], c *rconn) bool {
	c.flow.Tuple = res.Handshake.Tuple
	return h.d.Establish(res.Handshake.Tuple, c)
}

func (h *baseReplay) connect(t tuple.Tuple, _ int, c *rconn) bool {
	c.flow.Tuple = t
	return h.d.ConnectTuple(t, c) // the port is the kernel's choice, made already
}

func (h *baseReplay) abort(c *rconn) { h.d.Abort(c.flow.Tuple, c) }

func (h *baseReplay) timeWait(c *rconn, st timewait.State) {
	h.d.TimeWait(c.flow.Tuple, c, baseState(st), h.now+tcpTimeWait)
}

func (h *baseReplay) advance(now time.Duration) {
	h.now = now
	h.d.Expire(now)
}

func (h *baseReplay) close() {}
