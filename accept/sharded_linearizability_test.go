package accept_test

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/internal/porctest"
)

// The porcupine model of a Sharded listener: the set of queued
// connections, the set of those already taken (accepted, or handed back by
// Drain), and a closed flag. Acceptors are registered before a history
// starts and stay for all of it, so which shards have a bound acceptor is
// fixed, and so is where TryEnqueue puts a connection: the local queue of a
// shard with an acceptor, else the global queue. (Acceptors that come and
// go, with the drains of a shard's last one, are left to
// TestShardedMatchesModel and the stress tests; Migrate to TestShardedMigrate
// and TestBacklogMigrateUnderLoad.) One history is checked as
// a whole: every operation takes or gives back one of the backlog's
// credits, which any shard's Enqueue may find, so porctest.PartitionBy has
// no key to split it by.
//
// The linearization points the model is built on (each inside its call):
// a successful Enqueue when it takes its credit (before its item is in a
// ring), a successful accept at its check of the closed flags after its
// claim of the ring's head (before it gives its credit back), Close at its
// setting of the closed flag, and each connection Drain hands back at its
// claim of it; after Close has returned, Drain finds every connection
// left. At those
// points every connection in the model's set holds a credit, so a
// successful Enqueue always finds the set below the limit. The
// other results are allowed exactly the slack the code has, and no more:
//
//   - Accepts take from the set, in no order across queues, but one
//     producer's connections to one queue leave in the order it enqueued
//     them (a ring is FIFO, and one producer claims its positions in call
//     order). A connection to a shard with an acceptor goes to the global
//     queue instead when the shard's ring reports ErrQueueFull, which needs the
//     dequeue of the oldest cell to be in flight (an accept of that shard's
//     connection overlapping the Enqueue) after at least Cap(local)
//     connections went through that ring. Only then may a producer's later
//     connection to that shard leave before an earlier one.
//   - An accept that finds nothing (TryAccept false, Accept's ctx error or
//     ErrClosed) scans its queues one at a time, each with TryDequeue, which
//     reports false while the enqueue that claimed the ring's head is in
//     flight. So every connection it could see (its own shard's, and the
//     global queue's; an unbound acceptor sees every shard's) must have
//     been enqueued by a call overlapping it, or sit behind such a
//     connection in the same ring: one whose enqueue overlapped the accept
//     and is in the model (queued or taken) at that point. The global ring
//     holds the connections to shards with no acceptor and those that
//     overflowed (see above); a local ring, its shard's. ErrClosed needs the
//     closed flag as well.
//   - ErrBacklog: Enqueue takes a credit (its shard's, the pool's, or any
//     shard's, see backlog.go) and fails if it finds none. Besides the
//     queued connections, credits are held for a while by failing Enqueues
//     (which took one and give it back when the ring refuses), by accepts
//     that claimed their connection and have not given its credit back,
//     and, with a batch of more than one, by batches moving between a
//     shard and the pool or another shard. The configurations below have
//     backlogs of 0 to 3, so NewSharded's batch is one and the last kind
//     never holds a credit beyond its call's own; one round in four sets a
//     batch of 2, and then each overlapping successful Enqueue or accept
//     (a mover) may hold a batch in transit. Close does not give back the
//     credits of the connections it hands back. So ErrBacklog is allowed
//     when the set plus the overlapping failed Enqueues plus the taken
//     connections of overlapping accepts and Close, plus a batch per
//     mover when the batch is above one, reach the limit.
//     It is also allowed when the global ring reports ErrQueueFull, which needs
//     its oldest cell's dequeue in flight (an overlapping accept or Close
//     that took its connection) and at least Cap(global) connections
//     enqueued so far.
//   - Enqueue reads the closed flag before it takes a credit: one that
//     overlapped Close may succeed (and then Close, or an accept, returns
//     its connection) or report ErrBacklog after Close set the flag;
//     ErrClosed only after. This is not linearizable, and not only in the model: an
//     Enqueue that read the flag before Close set it can be admitted by a
//     credit that an accept gave back after another Enqueue had already
//     returned ErrClosed.
//   - An accept claims a connection before it checks the closed flags: one
//     that then finds the listener closed puts the connection back (to the
//     list Close hands back) and returns ErrClosed. While it holds the
//     connection, other accepts do not see it, and may take the same
//     producer's later connections to that queue first. So a connection
//     Close hands back is allowed to be missing for any accept (or Close)
//     that overlaps an accept that returned ErrClosed. (The same hold, with
//     the connection put back into the global queue, follows an acceptor's
//     own Close; the histories do not close acceptors, TestAcceptor* and
//     the stress tests do.)
//   - An accept after Close returns ErrClosed, even with connections
//     queued: those are for Drain. Every history ends with a Close (client
//     0's, or the harness's) and a Drain once every client is done,
//     recorded as one drain per connection it returned (FIFO as accepts
//     are) and drained: the listener closed with nothing queued. So a
//     connection that is never taken is caught.
//
// The overlap sets come from the recorded call and return times, which
// enclose the real calls, so an overlap the calls had is always seen.

type shOp uint8

const (
	shEnqueue shOp = iota
	shAccept
	shClose
	shDrain
	shDrained
)

type shResult uint8

const (
	shOK      shResult = iota
	shBacklog          // Enqueue: ErrBacklog
	shClosed           // Enqueue, TryAccept or Accept: ErrClosed
	shEmpty            // TryAccept: ErrEmpty; Accept: ctx.Err()
)

// set128 is a set of connection values, 1 to 127.
type set128 [2]uint64

func (s set128) has(v int) bool         { return s[v>>6]>>(v&63)&1 != 0 }
func (s set128) with(v int) set128      { s[v>>6] |= 1 << (v & 63); return s }
func (s set128) without(v int) set128   { s[v>>6] &^= 1 << (v & 63); return s }
func (s set128) and(o set128) set128    { return set128{s[0] & o[0], s[1] & o[1]} }
func (s set128) or(o set128) set128     { return set128{s[0] | o[0], s[1] | o[1]} }
func (s set128) andNot(o set128) set128 { return set128{s[0] &^ o[0], s[1] &^ o[1]} }
func (s set128) empty() bool            { return s == set128{} }
func (s set128) len() int               { return bits.OnesCount64(s[0]) + bits.OnesCount64(s[1]) }

func (s set128) values() []int {
	var out []int
	for v := range 128 {
		if s.has(v) {
			out = append(out, v)
		}
	}
	return out
}

type shInput struct {
	op     shOp
	client int
	shard  int // shEnqueue: the shard; shAccept: the acceptor's shard, or Unbound
	v      int // shEnqueue: the connection
	// shEnqueue: the connections returned by overlapping accepts and by an
	// overlapping Close. shAccept that found nothing: the connections of
	// the successful Enqueues that overlapped it.
	overlap     set128
	failed      int  // shEnqueue: overlapping Enqueues that failed
	movers      int  // shEnqueue: overlapping successful Enqueues and accepts, which may move a batch of credits
	duringClose bool // shEnqueue: overlapped Close
	// shAccept, shDrain: another accept that returned ErrClosed overlapped
	// it, and may have held a connection it then put back.
	putBack bool
}

type shOutput struct {
	res shResult
	v   int // shAccept with shOK, shDrain: the connection
}

// shState is comparable, as porcupine's default equality needs.
type shState struct {
	items  set128 // queued
	taken  set128 // accepted, or handed back by Close
	closed bool
}

// shardedConfig is a listener and its acceptors: one per client.
type shardedConfig struct {
	shards, backlog int
	batch           int   // the backlog's batch, if set (Sharded.SetBacklogBatch); else NewSharded's, 1 for these backlogs
	acceptors       []int // client c's acceptor's shard, or Unbound
}

func (c shardedConfig) limit() int { return c.backlog + 1 }

// caps returns the capacities of the global ring and of a local one, as
// NewSharded sizes them (see Sharded's Memory paragraph) and NewQueue
// rounds them.
func (c shardedConfig) caps() (global, local int) {
	pow2 := func(n int) int { return max(2, 1<<bits.Len(uint(n-1))) }
	l := c.limit()
	return pow2(2 * l), pow2(min(l, max(16, 2*l/c.shards)))
}

func (c shardedConfig) bound() []bool {
	b := make([]bool, c.shards)
	for _, s := range c.acceptors {
		if s != accept.Unbound {
			b[s] = true
		}
	}
	return b
}

// shSpec is what the model knows of a history's connections, from the
// configuration and the recorded Enqueues.
type shSpec struct {
	limit, globalCap, localCap int
	batchSlack                 int         // credits a mover may hold in transit: the batch, when above one
	bound                      []bool      // shard has an acceptor
	shardOf                    [128]int    // the shard a connection was enqueued on
	onShard                    []set128    // connections enqueued on a shard
	othersLocal                []set128    // connections in other bound shards' local queues
	globalClass                set128      // connections to shards with no acceptor
	earlier                    [128]set128 // the same producer's earlier connections to the same queue
	// Connections to a bound shard whose Enqueue overlapped an accept (or
	// Close) of a connection to that shard: those that may have overflowed
	// to the global queue.
	mayOverflow set128
	drained     set128 // connections Close handed back
}

func newShSpec(cfg shardedConfig, history []porcupine.Operation) *shSpec {
	sp := &shSpec{limit: cfg.limit(), bound: cfg.bound(), onShard: make([]set128, cfg.shards), othersLocal: make([]set128, cfg.shards)}
	sp.globalCap, sp.localCap = cfg.caps()
	if cfg.batch > 1 {
		sp.batchSlack = cfg.batch
	}
	ops := slices.Clone(history)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	type class struct{ client, queue int }
	seen := map[class]set128{}
	var enqueues []porcupine.Operation
	for _, op := range ops {
		in := op.Input.(shInput)
		if in.op == shDrain {
			sp.drained = sp.drained.with(op.Output.(shOutput).v)
		}
		if in.op != shEnqueue {
			continue
		}
		enqueues = append(enqueues, op)
		sp.shardOf[in.v] = in.shard
		sp.onShard[in.shard] = sp.onShard[in.shard].with(in.v)
		k := class{in.client, in.shard}
		if !sp.bound[in.shard] {
			k.queue = -1
			sp.globalClass = sp.globalClass.with(in.v)
		}
		sp.earlier[in.v] = seen[k]
		seen[k] = seen[k].with(in.v)
	}
	for k := range sp.othersLocal {
		for j, b := range sp.bound {
			if b && j != k {
				sp.othersLocal[k] = sp.othersLocal[k].or(sp.onShard[j])
			}
		}
	}
	for _, e := range enqueues {
		in := e.Input.(shInput)
		if !sp.bound[in.shard] {
			continue
		}
		for _, o := range history {
			oin, oout := o.Input.(shInput), o.Output.(shOutput)
			if (oin.op == shAccept && oout.res == shOK || oin.op == shDrain) && sp.shardOf[oout.v] == in.shard && overlap(e, o) {
				sp.mayOverflow = sp.mayOverflow.with(in.v)
			}
		}
	}
	return sp
}

func overlap(a, b porcupine.Operation) bool { return a.Call <= b.Return && b.Call <= a.Return }

// take removes v, accepted or handed back by Close, keeping a producer's
// order to one queue (see the model).
func (sp *shSpec) take(s shState, v int, in shInput) (bool, shState) {
	if !s.items.has(v) {
		return false, s
	}
	earlier := s.items.and(sp.earlier[v])
	if in.putBack {
		earlier = earlier.andNot(sp.drained) // held by an overlapping accept, and put back
	}
	if !earlier.empty() {
		k := sp.shardOf[v]
		if !sp.bound[k] || s.items.or(s.taken).and(sp.onShard[k]).len() < sp.localCap ||
			!sp.mayOverflow.has(v) && earlier.and(sp.mayOverflow).empty() {
			return false, s
		}
	}
	s.items, s.taken = s.items.without(v), s.taken.with(v)
	return true, s
}

// emptyOK reports whether an acceptor on shard (or Unbound) may find
// nothing in state s (see the model).
func (sp *shSpec) emptyOK(s shState, in shInput) bool {
	visible := s.items
	if in.shard != accept.Unbound {
		visible = visible.andNot(sp.othersLocal[in.shard])
	}
	excuses := in.overlap.and(s.items.or(s.taken)) // in flight during the call, and enqueued
	for _, x := range visible.values() {
		if excuses.has(x) || in.putBack && sp.drained.has(x) {
			continue
		}
		// x waits in a ring behind a head whose enqueue is in flight.
		var ring set128
		if k := sp.shardOf[x]; sp.bound[k] {
			ring = sp.onShard[k]
		}
		if !sp.bound[sp.shardOf[x]] || sp.mayOverflow.has(x) {
			ring = ring.or(sp.globalClass).or(sp.mayOverflow)
		}
		if excuses.and(ring).empty() {
			return false
		}
	}
	return true
}

func (sp *shSpec) model() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return shState{} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(shState), input.(shInput), output.(shOutput)
			switch in.op {
			case shEnqueue:
				if out.res == shClosed {
					return s.closed, s
				}
				if s.closed && !in.duringClose {
					return false, s
				}
				if out.res == shOK {
					if s.items.len() >= sp.limit || s.items.or(s.taken).has(in.v) {
						return false, s
					}
					s.items = s.items.with(in.v)
					return true, s
				}
				taken := in.overlap.and(s.taken)
				if s.items.len()+in.failed+taken.len()+sp.batchSlack*in.movers >= sp.limit {
					return true, s
				}
				return !taken.empty() && s.items.or(s.taken).len() >= sp.globalCap, s
			case shAccept:
				switch out.res {
				case shOK:
					if s.closed {
						return false, s
					}
					return sp.take(s, out.v, in)
				case shClosed: // even with connections queued: they are Drain's
					return s.closed, s
				}
				return sp.emptyOK(s, in), s
			case shClose:
				if s.closed {
					return false, s
				}
				s.closed = true
				return true, s
			case shDrain:
				if !s.closed {
					return false, s
				}
				return sp.take(s, out.v, in)
			case shDrained:
				return s.closed && s.items.empty(), s
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(shInput), output.(shOutput)
			res := []string{"ok", "backlog", "closed", "empty"}[out.res]
			switch in.op {
			case shEnqueue:
				return fmt.Sprintf("enqueue(shard %d, %d) -> %s (overlapping takes %v, %d failed enqueues, %d movers, during close %v)",
					in.shard, in.v, res, in.overlap.values(), in.failed, in.movers, in.duringClose)
			case shAccept:
				if out.res == shOK {
					return fmt.Sprintf("accept(shard %d) -> %d", in.shard, out.v)
				}
				return fmt.Sprintf("accept(shard %d) -> %s (overlapping enqueues %v)", in.shard, res, in.overlap.values())
			case shClose:
				return "close"
			case shDrain:
				return fmt.Sprintf("drain -> %d", out.v)
			}
			return "drained"
		},
		DescribeState: func(state any) string {
			s := state.(shState)
			return fmt.Sprintf("queued %v closed=%v", s.items.values(), s.closed)
		},
	}
}

// withShardedOverlaps fills in the overlap sets of a history (see the
// model).
func withShardedOverlaps(ops []porcupine.Operation) []porcupine.Operation {
	for i, op := range ops {
		in, out := op.Input.(shInput), op.Output.(shOutput)
		in.overlap, in.failed, in.movers, in.duringClose, in.putBack = set128{}, 0, 0, false, false
		for j, o := range ops {
			if j == i || !overlap(op, o) {
				continue
			}
			oin, oout := o.Input.(shInput), o.Output.(shOutput)
			switch in.op {
			case shEnqueue:
				switch {
				case oin.op == shAccept && oout.res == shOK, oin.op == shDrain:
					in.overlap = in.overlap.with(oout.v)
					if oin.op == shAccept {
						in.movers++
					}
				case oin.op == shEnqueue && oout.res != shOK:
					in.failed++
				case oin.op == shEnqueue:
					in.movers++
				case oin.op == shClose:
					in.duringClose = true
				}
			case shAccept:
				if out.res != shOK && oin.op == shEnqueue && oout.res == shOK {
					in.overlap = in.overlap.with(oin.v)
				}
			}
			if (in.op == shAccept || in.op == shDrain) && oin.op == shAccept && oout.res == shClosed {
				in.putBack = true
			}
		}
		ops[i].Input = in
	}
	return ops
}

// listener is what the harness drives: a Sharded, or a broken stand-in.
type listener interface {
	TryEnqueue(shard, v int) error
	Register(shard int) (acceptor, error)
	Close() error
	Drain() []int
}

type acceptor interface {
	TryAccept() (int, error)
	Accept(ctx context.Context) (int, error)
	Close() error
}

// realListener drives a Sharded[T]: T is an int, or an int padded to
// paddedConn's size, whose copies into and out of the rings (between a
// claim and its publish or release) widen the windows in which the
// failures are weaker than linearizable, so that the histories hit them.
type realListener[T any] struct {
	s    *accept.Sharded[T]
	wrap func(int) T
	v    func(T) int
}

type paddedConn struct {
	v int
	_ [paddedSize]byte
}

// paddedSize makes a ring's copy of a connection take about a microsecond.
const paddedSize = 1 << 14

// newRealListener returns a Sharded for cfg, of padded connections or not.
func newRealListener(t *testing.T, cfg shardedConfig, padded bool) listener {
	opts := accept.ShardedOptions{Shards: cfg.shards, Backlog: cfg.backlog}
	if padded {
		s, err := accept.NewSharded[paddedConn](opts)
		require.NoError(t, err)
		if cfg.batch > 0 {
			s.SetBacklogBatch(int64(cfg.batch))
		}
		return realListener[paddedConn]{s, func(v int) paddedConn { return paddedConn{v: v} }, func(c paddedConn) int { return c.v }}
	}
	s, err := accept.NewSharded[int](opts)
	require.NoError(t, err)
	if cfg.batch > 0 {
		s.SetBacklogBatch(int64(cfg.batch))
	}
	return realListener[int]{s, func(v int) int { return v }, func(v int) int { return v }}
}

func (l realListener[T]) TryEnqueue(shard, v int) error { return l.s.TryEnqueue(shard, l.wrap(v)) }
func (l realListener[T]) Close() error                  { return l.s.Close() }

func (l realListener[T]) Drain() []int {
	var out []int
	for _, c := range l.s.Drain() {
		out = append(out, l.v(c))
	}
	return out
}

func (l realListener[T]) Register(shard int) (acceptor, error) {
	a, err := l.s.Register(shard)
	if err != nil {
		return nil, err
	}
	return realAcceptor[T]{a, l.v}, nil
}

type realAcceptor[T any] struct {
	a *accept.Acceptor[T]
	v func(T) int
}

func (a realAcceptor[T]) TryAccept() (int, error) {
	c, err := a.a.TryAccept()
	return a.v(c), err
}

func (a realAcceptor[T]) Accept(ctx context.Context) (int, error) {
	c, err := a.a.Accept(ctx)
	return a.v(c), err
}

func (a realAcceptor[T]) Close() error { return a.a.Close() }

// recordShardedHistory registers one acceptor per client, runs the clients
// (ops random Enqueues of fresh connections on random shards, TryAccepts
// and Accepts with contexts cancelled after a few yields; client 0 closes
// the listener at a random point, or the harness does at the end), all
// started at once, and returns the history with the overlap sets filled
// in.
func recordShardedHistory(t *testing.T, l listener, cfg shardedConfig, seed uint64, ops int) []porcupine.Operation {
	clients := len(cfg.acceptors)
	accs := make([]acceptor, clients)
	for c, shard := range cfg.acceptors {
		a, err := l.Register(shard)
		require.NoError(t, err)
		accs[c] = a
	}
	rec := porctest.NewRecorder(clients)
	closeOp := func(c int) {
		call := rec.Call()
		if err := l.Close(); err != nil {
			panic(err)
		}
		rec.Return(c, call, shInput{op: shClose, client: c}, shOutput{})
	}
	var closed atomic.Bool
	var ready atomic.Int32
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := porctest.NewRand(seed*0x9e3779b97f4a7c15 + uint64(c)*0xbf58476d1ce4e5b9)
			closeAt := -1
			if c == 0 {
				closeAt = int(seed>>2%uint64(2*ops)) + 1 // sometimes never: the harness closes
			}
			startTogether(&ready, clients)
			a := accs[c]
			for i := range ops {
				x := r.Next()
				if i == closeAt {
					closed.Store(true)
					closeOp(c)
					continue
				}
				call := rec.Call()
				if x>>50&7 == 0 {
					runtime.Gosched() // others' calls overlap this one even on one P
				}
				var in shInput
				var out shOutput
				if x>>20&1 == 0 {
					in = shInput{op: shEnqueue, client: c, shard: int(x >> 24 % uint64(cfg.shards)), v: c*32 + i + 1}
					switch err := l.TryEnqueue(in.shard, in.v); {
					case err == nil:
						out.res = shOK
					case errors.Is(err, accept.ErrBacklog):
						out.res = shBacklog
					case errors.Is(err, accept.ErrClosed):
						out.res = shClosed
					default:
						panic(err)
					}
				} else {
					in = shInput{op: shAccept, client: c, shard: cfg.acceptors[c]}
					if x>>56&3 == 0 {
						// Accept returns ctx.Err() only after a take found
						// nothing: the model treats it as an empty TryAccept.
						v, err := a.Accept(cancelAfter(x >> 58 % 16))
						switch {
						case err == nil:
							out = shOutput{res: shOK, v: v}
						case errors.Is(err, accept.ErrClosed):
							out.res = shClosed
						case errors.Is(err, context.Canceled):
							out.res = shEmpty
						default:
							panic(err)
						}
					} else {
						switch v, err := a.TryAccept(); {
						case err == nil:
							out = shOutput{res: shOK, v: v}
						case errors.Is(err, accept.ErrClosed):
							out.res = shClosed
						case errors.Is(err, accept.ErrEmpty):
							out.res = shEmpty
						default:
							panic(err)
						}
					}
				}
				if x>>53&7 == 0 {
					runtime.Gosched()
				}
				rec.Return(c, call, in, out)
				jitter(x)
			}
		})
	}
	wg.Wait()
	if !closed.Load() {
		closeOp(0)
	}
	call := rec.Call()
	for _, v := range l.Drain() {
		rec.Return(0, call, shInput{op: shDrain}, shOutput{v: v})
	}
	rec.Return(0, call, shInput{op: shDrained}, shOutput{})
	for _, a := range accs {
		a.Close()
	}
	return withShardedOverlaps(rec.History())
}

// shardedConfigFor varies the listener with the round: 2 or 3 shards, a
// backlog of 0 to 3 (so that it fills often), in one round of four a
// backlog batch of 2 (so that shards hold credits the others must find),
// and four acceptors, each bound to shard 0 or 1 or unbound (so that some
// shards have none, and their connections go to the global queue).
func shardedConfigFor(round uint64) shardedConfig {
	cfg := shardedConfig{shards: 2 + int(round%2), backlog: int(round / 2 % 4)}
	if round/8%4 == 3 {
		cfg.batch = 2
	}
	r := porctest.NewRand(round)
	for range 4 {
		cfg.acceptors = append(cfg.acceptors, r.IntN(3)-1) // Unbound (-1), 0 or 1
	}
	return cfg
}

// checkSharded records a history of l and checks it.
func checkSharded(t *testing.T, l listener, cfg shardedConfig, seed uint64, ops int, timeout time.Duration) (porcupine.CheckResult, []porcupine.Operation, porcupine.Model) {
	history := recordShardedHistory(t, l, cfg, seed, ops)
	m := newShSpec(cfg, history).model()
	return porcupine.CheckOperationsTimeout(m, history, timeout), history, m
}

// TestShardedLinearizable records many short concurrent histories of
// Enqueue, TryAccept, Accept and Close on small listeners (so that the
// backlog fills and empties often), of ints and of padded connections
// every other round, and checks each with porcupine.
func TestShardedLinearizable(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 60
	}
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range uint64(rounds) {
			cfg := shardedConfigFor(round)
			history := recordShardedHistory(t, newRealListener(t, cfg, round%2 == 0), cfg, round, 7)
			check(t, newShSpec(cfg, history).model(), history, fmt.Sprintf("round %d, %+v", round, cfg))
		}
	})
}

// The model rejects the histories a broken listener would produce, and
// accepts the slack Sharded has.
func TestShardedModelRejects(t *testing.T) {
	// Two shards, a backlog of 1 (two connections); shard 0 has a bound
	// acceptor (client 1), shard 1 none (its connections go to the global
	// queue); client 2's acceptor is unbound, client 3's bound to shard 0.
	cfg := shardedConfig{shards: 2, backlog: 1, acceptors: []int{accept.Unbound, 0, accept.Unbound, 0}}
	op := func(client int, call, ret int64, in shInput, out shOutput) porcupine.Operation {
		in.client = client
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	enq := func(shard, v int) shInput { return shInput{op: shEnqueue, shard: shard, v: v} }
	acc := func(shard int) shInput { return shInput{op: shAccept, shard: shard} }
	ok := shOutput{}
	got := func(v int) shOutput { return shOutput{v: v} }
	backlog, closed, empty := shOutput{res: shBacklog}, shOutput{res: shClosed}, shOutput{res: shEmpty}
	closeOf := func(client int, call, ret int64, vs ...int) []porcupine.Operation {
		h := []porcupine.Operation{op(client, call, ret, shInput{op: shClose}, ok)}
		for _, v := range vs {
			h = append(h, op(client, call, ret, shInput{op: shDrain}, got(v)))
		}
		return append(h, op(client, call, ret, shInput{op: shDrained}, ok))
	}
	drainOf := func(client int, call, ret int64, vs ...int) []porcupine.Operation {
		var h []porcupine.Operation
		for _, v := range vs {
			h = append(h, op(client, call, ret, shInput{op: shDrain}, got(v)))
		}
		return append(h, op(client, call, ret, shInput{op: shDrained}, ok))
	}
	h := func(ops ...any) []porcupine.Operation {
		var out []porcupine.Operation
		for _, o := range ops {
			switch o := o.(type) {
			case porcupine.Operation:
				out = append(out, o)
			case []porcupine.Operation:
				out = append(out, o...)
			}
		}
		return withShardedOverlaps(out)
	}
	U := accept.Unbound
	for _, c := range []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"either order across queues", true, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok),
			op(2, 5, 6, acc(U), got(2)), op(1, 7, 8, acc(0), got(1)), closeOf(0, 9, 10))},
		{"one producer's order to a shard", false, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(0, 2), ok),
			op(1, 5, 6, acc(0), got(2)), closeOf(0, 9, 10, 1))},
		{"one producer's order to the global queue", false, h(op(0, 1, 2, enq(1, 1), ok), op(0, 3, 4, enq(1, 2), ok),
			op(2, 5, 6, acc(U), got(2)), closeOf(0, 9, 10, 1))},
		{"two producers' concurrent enqueues in either order", true, h(op(0, 1, 4, enq(0, 1), ok), op(3, 2, 3, enq(0, 2), ok),
			op(1, 5, 6, acc(0), got(2)), op(1, 7, 8, acc(0), got(1)), closeOf(0, 9, 10))},
		{"duplicate", false, h(op(0, 1, 2, enq(0, 1), ok), op(1, 3, 4, acc(0), got(1)), op(3, 5, 6, acc(0), got(1)),
			closeOf(0, 9, 10))},
		{"never enqueued", false, h(op(1, 3, 4, acc(0), got(7)), closeOf(0, 9, 10))},
		{"accepted before its enqueue", false, h(op(1, 1, 2, acc(0), got(1)), op(0, 3, 4, enq(0, 1), ok), closeOf(0, 9, 10))},
		{"lost", false, h(op(0, 1, 2, enq(0, 1), ok), closeOf(0, 9, 10))},
		{"backlog full", true, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok), op(0, 5, 6, enq(0, 3), backlog),
			closeOf(0, 9, 10, 1, 2))},
		{"over the backlog", false, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok), op(0, 5, 6, enq(0, 3), ok),
			closeOf(0, 9, 10, 1, 2, 3))},
		{"backlog below the limit", false, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), backlog),
			closeOf(0, 9, 10, 1))},
		{"backlog while two accepts hold their counts", true, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(0, 2), ok),
			op(1, 5, 20, acc(0), got(1)), op(3, 5, 20, acc(0), got(2)), op(2, 8, 9, acc(U), empty),
			op(0, 10, 11, enq(0, 3), backlog), closeOf(0, 21, 22))},
		{"backlog after an accept gave its count back", false, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(0, 2), ok),
			op(1, 5, 20, acc(0), got(1)), op(3, 5, 6, acc(0), got(2)), op(2, 8, 9, acc(U), empty),
			op(0, 10, 11, enq(0, 3), backlog), closeOf(0, 21, 22))},
		{"backlog while a failing enqueue and an accept hold counts", true, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok),
			op(3, 5, 20, enq(1, 9), backlog), op(1, 6, 20, acc(0), got(1)), op(2, 7, 8, acc(U), got(2)), op(2, 9, 10, acc(U), empty),
			op(0, 11, 12, enq(0, 3), backlog), closeOf(0, 21, 22))},
		{"backlog after the failing enqueue returned", false, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok),
			op(3, 5, 6, enq(1, 9), backlog), op(1, 6, 20, acc(0), got(1)), op(2, 7, 8, acc(U), got(2)), op(2, 9, 10, acc(U), empty),
			op(0, 11, 12, enq(0, 3), backlog), closeOf(0, 21, 22))},
		{"backlog from a full global ring", true, h(op(0, 1, 2, enq(1, 1), ok), op(2, 3, 30, acc(U), got(1)),
			op(0, 5, 6, enq(1, 2), ok), op(1, 7, 8, acc(0), got(2)), op(0, 9, 10, enq(1, 3), ok), op(1, 11, 12, acc(0), got(3)),
			op(0, 13, 14, enq(1, 4), ok), op(1, 15, 16, acc(0), got(4)), op(0, 17, 18, enq(1, 5), backlog), closeOf(0, 31, 32))},
		{"backlog from a global ring that has not wrapped", false, h(op(0, 1, 2, enq(1, 1), ok), op(2, 3, 30, acc(U), got(1)),
			op(0, 5, 6, enq(1, 2), ok), op(1, 7, 8, acc(0), got(2)), op(0, 9, 10, enq(1, 3), ok), op(1, 11, 12, acc(0), got(3)),
			op(0, 17, 18, enq(1, 5), backlog), closeOf(0, 31, 32))},
		{"empty", true, h(op(1, 1, 2, acc(0), empty), closeOf(0, 9, 10))},
		{"empty after a completed enqueue", false, h(op(0, 1, 2, enq(1, 1), ok), op(1, 3, 4, acc(0), empty),
			closeOf(0, 9, 10, 1))},
		{"empty while the enqueue is in flight", true, h(op(0, 1, 6, enq(1, 1), ok), op(1, 3, 4, acc(0), empty),
			closeOf(0, 9, 10, 1))},
		{"empty behind an in-flight enqueue to the same queue", true, h(op(3, 1, 8, enq(1, 1), ok), op(0, 2, 3, enq(1, 2), ok),
			op(2, 4, 5, acc(U), empty), closeOf(0, 9, 10, 1, 2))},
		{"empty while only another queue's enqueue is in flight", false, h(op(0, 1, 2, enq(1, 1), ok),
			op(3, 3, 8, enq(0, 2), ok), op(2, 4, 5, acc(U), empty), closeOf(0, 9, 10, 1, 2))},
		{"a bound acceptor does not see another shard's queue", true, h(op(0, 1, 2, enq(0, 1), ok),
			op(0, 3, 4, acc(1), empty), closeOf(0, 9, 10, 1))},
		{"close returns what is queued", true, h(op(0, 1, 2, enq(0, 1), ok), op(0, 3, 4, enq(1, 2), ok),
			closeOf(2, 5, 6, 2, 1), op(0, 7, 8, enq(0, 3), closed), op(1, 9, 10, acc(0), closed))},
		{"accept sees closed with a connection left for Drain", true, h(op(0, 1, 2, enq(0, 1), ok),
			op(2, 3, 4, shInput{op: shClose}, ok), op(1, 5, 6, acc(0), closed), drainOf(2, 7, 8, 1))},
		{"accept after close takes a connection", false, h(op(0, 1, 2, enq(0, 1), ok),
			op(2, 3, 4, shInput{op: shClose}, ok), op(1, 5, 6, acc(0), got(1)), drainOf(2, 7, 8))},
		{"drain loses a connection", false, h(op(0, 1, 2, enq(0, 1), ok),
			op(2, 3, 4, shInput{op: shClose}, ok), drainOf(2, 7, 8))},
		{"drain before close", false, h(op(0, 1, 2, enq(0, 1), ok),
			drainOf(2, 3, 4, 1), op(2, 5, 6, shInput{op: shClose}, ok))},
		{"a connection held by an accept that saw Close is missing meanwhile", true, h(op(0, 1, 2, enq(0, 1), ok),
			op(0, 3, 4, enq(0, 2), ok), op(3, 5, 20, acc(0), closed), op(1, 6, 7, acc(0), got(2)), op(1, 8, 9, acc(0), empty),
			op(2, 10, 11, shInput{op: shClose}, ok), drainOf(2, 21, 22, 1))},
		{"a connection missing with no accept to hold it", false, h(op(0, 1, 2, enq(0, 1), ok),
			op(0, 3, 4, enq(0, 2), ok), op(1, 6, 7, acc(0), got(2)),
			op(2, 10, 11, shInput{op: shClose}, ok), drainOf(2, 21, 22, 1))},
		{"enqueue after close", false, h(closeOf(2, 1, 2), op(0, 3, 4, enq(0, 1), ok))},
		{"enqueue during close", true, h(op(0, 1, 4, enq(0, 1), ok), closeOf(2, 2, 3, 1))},
		{"closed before close", false, h(op(0, 1, 2, enq(0, 1), closed), closeOf(2, 3, 4))},
	} {
		require.Equal(t, c.ok, porcupine.CheckOperations(newShSpec(cfg, c.ops).model(), c.ops), c.name)
	}
}

// brokenWrapper is a Sharded with one deliberate bug around it, to show
// that the harness and the model catch a real implementation's mistakes.
type brokenWrapper struct {
	listener
	bug   string
	n     atomic.Int64
	again atomic.Int64 // "duplicate": a connection to hand out a second time, or 0
}

func (w *brokenWrapper) TryEnqueue(shard, v int) error {
	n := w.n.Add(1)
	switch {
	case w.bug == "lost" && n%4 == 0:
		return nil // dropped, yet reported queued
	case w.bug == "spurious backlog" && n%3 == 0:
		return accept.ErrBacklog
	}
	return w.listener.TryEnqueue(shard, v)
}

func (w *brokenWrapper) Register(shard int) (acceptor, error) {
	a, err := w.listener.Register(shard)
	if err != nil {
		return nil, err
	}
	return &brokenWrapperAcceptor{a, w}, nil
}

type brokenWrapperAcceptor struct {
	acceptor
	w *brokenWrapper
}

func (a *brokenWrapperAcceptor) TryAccept() (int, error) {
	w := a.w
	n := w.n.Add(1)
	if w.bug == "spurious empty" && n%3 == 0 {
		return 0, accept.ErrEmpty
	}
	if v := w.again.Swap(0); v != 0 {
		return int(v), nil
	}
	v, err := a.acceptor.TryAccept()
	if err == nil && w.bug == "duplicate" && n%3 == 0 {
		w.again.Store(int64(v))
	}
	return v, err
}

// brokenListener is a mutex-guarded stand-in for Sharded, routing and
// limiting as Sharded does, with one deliberate bug of the kinds a wrapper
// cannot add. The bug "" is none: its histories must all pass.
type brokenListener struct {
	mu     sync.Mutex
	limit  int
	bound  []bool
	locals [][]int
	global []int
	closed bool
	bug    string
}

func newBrokenListener(cfg shardedConfig, bug string) *brokenListener {
	return &brokenListener{limit: cfg.limit(), bound: cfg.bound(), locals: make([][]int, cfg.shards), bug: bug}
}

func (b *brokenListener) queued() int {
	n := len(b.global)
	for _, l := range b.locals {
		n += len(l)
	}
	return n
}

func (b *brokenListener) TryEnqueue(shard, v int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed && b.bug != "enqueue after close":
		return accept.ErrClosed
	case b.queued() >= b.limit && !(b.bug == "over backlog" && b.queued() == b.limit):
		return accept.ErrBacklog
	case b.bound[shard]:
		b.locals[shard] = append(b.locals[shard], v)
	default:
		b.global = append(b.global, v)
	}
	return nil
}

func (b *brokenListener) Register(shard int) (acceptor, error) { return &brokenAcceptor{b, shard}, nil }

func (b *brokenListener) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return accept.ErrClosed
	}
	b.closed = true
	return nil
}

func (b *brokenListener) Drain() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.global)
	for _, l := range b.locals {
		out = append(out, l...)
	}
	b.global, b.locals = nil, make([][]int, len(b.locals))
	if b.bug == "lossy drain" && len(out) > 0 {
		out = out[1:]
	}
	return out
}

type brokenAcceptor struct {
	b     *brokenListener
	shard int
}

// TryAccept takes from the acceptor's local queue, the global one, then
// the local queues of the shards with no acceptor (an unbound acceptor:
// every shard's), as Acceptor does.
func (a *brokenAcceptor) TryAccept() (int, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, accept.ErrClosed
	}
	queues := []*[]int{&b.global}
	if a.shard != accept.Unbound {
		queues = []*[]int{&b.locals[a.shard], &b.global}
	}
	for i := range b.locals {
		if i != a.shard && (a.shard == accept.Unbound || !b.bound[i]) {
			queues = append(queues, &b.locals[i])
		}
	}
	for _, q := range queues {
		if len(*q) == 0 {
			continue
		}
		i := 0
		if b.bug == "lifo" {
			i = len(*q) - 1
		}
		v := (*q)[i]
		*q = slices.Delete(*q, i, i+1)
		return v, nil
	}
	return 0, accept.ErrEmpty
}

func (a *brokenAcceptor) Accept(ctx context.Context) (int, error) {
	for {
		v, err := a.TryAccept()
		if err != accept.ErrEmpty {
			return v, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		runtime.Gosched()
	}
}

func (a *brokenAcceptor) Close() error { return nil }

// Each bug, added around a real Sharded or built into a stand-in, gets a
// history rejected within a few rounds; the stand-in without a bug gets
// none rejected.
func TestShardedLinearizabilityCatchesBrokenListeners(t *testing.T) {
	for round := range uint64(20) {
		cfg := shardedConfigFor(round)
		res, history, m := checkSharded(t, newBrokenListener(cfg, ""), cfg, round, 7, 10*time.Second)
		require.Equal(t, porcupine.Ok, res, "round %d, %+v: correct stand-in rejected:\n%s", round, cfg, describe(m, history))
	}
	for _, c := range []struct {
		bug     string
		wrapped bool // around a real Sharded; else a brokenListener
	}{
		{"duplicate", true}, {"lost", true}, {"spurious backlog", true}, {"spurious empty", true},
		{"over backlog", false}, {"lifo", false}, {"lossy drain", false}, {"enqueue after close", false},
	} {
		t.Run(c.bug, func(t *testing.T) {
			for round := range uint64(200) {
				cfg := shardedConfigFor(round)
				var l listener = newBrokenListener(cfg, c.bug)
				if c.wrapped {
					l = &brokenWrapper{listener: newRealListener(t, cfg, false), bug: c.bug}
				}
				if res, _, _ := checkSharded(t, l, cfg, round, 7, 2*time.Second); res == porcupine.Illegal {
					t.Logf("rejected in round %d", round)
					return
				}
			}
			t.Fatalf("no history of a listener with bug %q was rejected", c.bug)
		})
	}
}
