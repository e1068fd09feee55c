package accept_test

import (
	"context"
	"errors"
	"fmt"
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

// The porcupine model of a Queue: a FIFO of at most Cap values, and the
// two sides' closed flags.
//
// Successful operations are checked as linearizable: an enqueue takes
// effect when it claims its position, a dequeue when it claims the head.
// The failures are allowed exactly the slack the ring has (see the package
// doc), and no more:
//
//   - An empty TryDequeue takes effect when it reads the head cell. If the
//     cell is unpublished, either no enqueue has claimed the head position
//     (the queue is empty), or the one that has is still in flight at that
//     moment, and so overlaps the TryDequeue call. The model accepts
//     "empty" on a non-empty queue only if the enqueue of the value at its
//     head overlapped the call.
//   - An ErrQueueFull TryEnqueue takes effect when it reads tail = t. The
//     cell for t is still held by the item of position t-Cap: either that
//     item is still queued (the queue is full), or the dequeue that claimed
//     it has not released the cell yet and is in flight at that moment. The
//     model keeps the values of the last Cap dequeued positions, and
//     accepts ErrQueueFull on a queue of n < Cap values only if the value
//     dequeued from position t-Cap (the (Cap-n)-th most recent) was
//     dequeued by a call that overlapped the TryEnqueue.
//
// Enqueue and Dequeue, run with contexts cancelled after a few yields, are
// checked as the same operations: a nil return as a TryEnqueue or a
// TryDequeue that succeeded, a ctx error as the failed TryEnqueue or
// TryDequeue they made before waiting (with the same slack), and a
// Dequeue's ErrClosed as taking effect once the dequeue side is closed.
//
// Close closes the enqueue side (the closed bit in tail), then the
// dequeue side (the bit in head): in between, enqueues fail and dequeues
// still take values. So Close is recorded as two operations, close
// enqueues and close dequeues, each with Close's call and return times,
// the second only after the first. After Close, client 0 calls Drain,
// recorded as one drain per value it returned (a dequeue that must find
// that value at the head, once the dequeue side is closed) and drained
// (the queue is closed and empty), all with Drain's times: drained is
// what shows a value lost by Close or Drain.
//
// The overlap sets are computed from the recorded call and return times,
// which enclose the real calls: an overlap the real calls had is always
// seen, so the model never rejects a history the ring can produce.

type qOp uint8

const (
	qEnqueue qOp = iota
	qDequeue
	qCloseEnq
	qCloseDeq
	qDrain
	qDrained
)

type enqResult uint8

const (
	enqOK enqResult = iota
	enqFull
	enqClosed
)

type qInput struct {
	op qOp
	v  int // qEnqueue: the value
	// qDequeue that found nothing: the values of the successful enqueues
	// that overlapped it. qEnqueue that got ErrQueueFull: the values
	// returned by dequeues that overlapped it.
	overlap []int
}

type qOutput struct {
	v      int  // qDequeue, qDrain: the value
	ok     bool // qDequeue: found a value
	closed bool // qDequeue: Dequeue returned ErrClosed
	enq    enqResult
}

// qState is comparable, as porcupine's default equality needs: the queued
// values and the last Cap dequeued values as strings of bytes.
type qState struct {
	items                string
	recent               string
	closedEnq, closedDeq bool
}

func linModel(capacity int) porcupine.Model {
	pop := func(s qState) qState {
		s.recent += s.items[:1]
		if len(s.recent) > capacity {
			s.recent = s.recent[1:]
		}
		s.items = s.items[1:]
		return s
	}
	return porcupine.Model{
		Init: func() any { return qState{} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(qState), input.(qInput), output.(qOutput)
			switch in.op {
			case qEnqueue:
				switch out.enq {
				case enqClosed:
					return s.closedEnq, s
				case enqOK:
					if s.closedEnq || len(s.items) == capacity {
						return false, s
					}
					s.items += string([]byte{byte(in.v)}) // not string(byte): that would encode a rune
					return true, s
				case enqFull:
					if s.closedEnq {
						return false, s
					}
					if len(s.items) == capacity {
						return true, s
					}
					k := capacity - len(s.items) // position t-Cap is the k-th most recently dequeued
					return len(s.recent) >= k && slices.Contains(in.overlap, int(s.recent[len(s.recent)-k])), s
				}
			case qDequeue:
				if out.closed {
					return s.closedDeq, s
				}
				if !out.ok {
					return s.closedDeq || len(s.items) == 0 || slices.Contains(in.overlap, int(s.items[0])), s
				}
				if s.closedDeq || len(s.items) == 0 || int(s.items[0]) != out.v {
					return false, s
				}
				return true, pop(s)
			case qCloseEnq:
				if s.closedEnq {
					return false, s
				}
				s.closedEnq = true
				return true, s
			case qCloseDeq:
				if !s.closedEnq || s.closedDeq {
					return false, s
				}
				s.closedDeq = true
				return true, s
			case qDrain:
				if !s.closedDeq || len(s.items) == 0 || int(s.items[0]) != out.v {
					return false, s
				}
				return true, pop(s)
			case qDrained:
				return s.closedDeq && len(s.items) == 0, s
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(qInput), output.(qOutput)
			switch in.op {
			case qEnqueue:
				return fmt.Sprintf("enqueue(%d) -> %v (overlapping dequeues %v)", in.v, []string{"ok", "full", "closed"}[out.enq], in.overlap)
			case qDequeue:
				if out.ok {
					return fmt.Sprintf("dequeue() -> %d", out.v)
				}
				if out.closed {
					return "dequeue() -> closed"
				}
				return fmt.Sprintf("dequeue() -> empty (overlapping enqueues %v)", in.overlap)
			case qCloseEnq:
				return "close enqueues"
			case qCloseDeq:
				return "close dequeues"
			case qDrain:
				return fmt.Sprintf("drain -> %d", out.v)
			}
			return "drained"
		},
		DescribeState: func(state any) string {
			s := state.(qState)
			return fmt.Sprintf("%v closed=%v/%v", []byte(s.items), s.closedEnq, s.closedDeq)
		},
	}
}

// fifo is what the harness drives: a Queue, or a broken stand-in.
type fifo interface {
	TryEnqueue(v int) error
	TryDequeue() (int, bool)
	Close() error
	Drain() []int
}

// blockingFIFO is a fifo with the blocking calls (a Queue).
type blockingFIFO interface {
	Enqueue(ctx context.Context, v int) error
	Dequeue(ctx context.Context) (int, error)
}

// cancelAfter returns a context that a goroutine cancels after n yields.
func cancelAfter(n uint64) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range n {
			runtime.Gosched()
		}
		cancel()
	}()
	return ctx
}

// slowFIFO is a fifo whose enqueues and dequeues can be split in two (a
// Queue, through export_test.go), so that the harness can hold one open
// while the other clients run: the windows in which the ring's failures
// are weaker than linearizable.
type slowFIFO interface {
	Claim() (publish func(v int), err error)
	ClaimHead() (take func() int, ok bool)
}

// startTogether holds each of n clients until all have arrived: a
// goroutine that ran all its calls before the next one started would
// record a sequential history.
func startTogether(ready *atomic.Int32, n int) {
	ready.Add(1)
	for spins := 0; ready.Load() < int32(n); spins++ {
		if spins%64 == 0 {
			runtime.Gosched()
		}
	}
}

// recordDrain records a Drain by client c: one drain per value, then
// drained, all with the Drain's call time.
func recordDrain(r *porctest.Recorder, c int, drain func() []int) {
	call := r.Call()
	vs := drain()
	for _, v := range vs {
		r.Return(c, call, qInput{op: qDrain}, qOutput{v: v})
	}
	r.Return(c, call, qInput{op: qDrained}, qOutput{})
}

// recordHistory runs clients goroutines of ops operations each (random
// enqueues of fresh values and dequeues; client 0 closes the queue at a
// random point, or the harness does at the end), all started at once, then
// drains the queue, and returns the history with the overlap sets filled
// in.
func recordHistory(q fifo, seed uint64, clients, ops int) []porcupine.Operation {
	rec := porctest.NewRecorder(clients)
	var ready atomic.Int32
	var closed atomic.Bool
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := porctest.NewRand(seed*0x9e3779b97f4a7c15 + uint64(c)*0xbf58476d1ce4e5b9)
			closeAt := -1
			if c == 0 {
				closeAt = int(seed>>3%uint64(2*ops)) + 1 // sometimes never
			}
			startTogether(&ready, clients)
			for i := range ops {
				x := r.Next()
				call := rec.Call()
				if x>>50&7 == 0 {
					// Yield inside the recorded interval: other clients' calls
					// then overlap this one even on a single P.
					runtime.Gosched()
				}
				if i == closeAt {
					closed.Store(true)
					if err := q.Close(); err != nil {
						panic(err)
					}
					rec.Return(c, call, qInput{op: qCloseEnq}, qOutput{})
					rec.Return(c, call, qInput{op: qCloseDeq}, qOutput{})
					continue
				}
				var in qInput
				var out qOutput
				if x>>20&1 == 0 {
					in = qInput{op: qEnqueue, v: c*60 + i + 1} // fits a byte for ops < 60
					var err error
					sq, slow := q.(slowFIFO)
					bq, blocking := q.(blockingFIFO)
					switch {
					case slow && x>>56&3 == 0:
						var publish func(int)
						if publish, err = sq.Claim(); err == nil {
							runtime.Gosched() // claimed, not published
							publish(in.v)
						}
					case blocking && x>>56&3 == 1:
						err = bq.Enqueue(cancelAfter(x>>58%16), in.v)
					default:
						err = q.TryEnqueue(in.v)
					}
					switch {
					case err == nil:
						out.enq = enqOK
					case errors.Is(err, accept.ErrQueueFull), errors.Is(err, context.Canceled):
						// An Enqueue returns ctx.Err() only after a TryEnqueue
						// found the queue full: the model treats it as that
						// failure.
						out.enq = enqFull
					case errors.Is(err, accept.ErrClosed):
						out.enq = enqClosed
					default:
						panic(err)
					}
				} else {
					in = qInput{op: qDequeue}
					sq, slow := q.(slowFIFO)
					bq, blocking := q.(blockingFIFO)
					switch {
					case slow && x>>56&3 == 0:
						var take func() int
						if take, out.ok = sq.ClaimHead(); out.ok {
							runtime.Gosched() // claimed, not released
							out.v = take()
						}
					case blocking && x>>56&3 == 1:
						// A Dequeue returns ctx.Err() only after it found the
						// queue empty (or its head in flight): the model treats
						// that as an empty TryDequeue.
						v, err := bq.Dequeue(cancelAfter(x >> 58 % 16))
						switch {
						case err == nil:
							out.v, out.ok = v, true
						case errors.Is(err, accept.ErrClosed):
							out.closed = true
						case !errors.Is(err, context.Canceled):
							panic(err)
						}
					default:
						out.v, out.ok = q.TryDequeue()
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
		call := rec.Call()
		if err := q.Close(); err != nil {
			panic(err)
		}
		rec.Return(0, call, qInput{op: qCloseEnq}, qOutput{})
		rec.Return(0, call, qInput{op: qCloseDeq}, qOutput{})
	}
	recordDrain(rec, 0, q.Drain)
	return withOverlaps(rec.History())
}

// withOverlaps fills in the overlap sets of the failed dequeues and
// enqueues (see the model).
func withOverlaps(ops []porcupine.Operation) []porcupine.Operation {
	overlaps := func(a, b porcupine.Operation) bool { return a.Call <= b.Return && b.Call <= a.Return }
	for i, op := range ops {
		in, out := op.Input.(qInput), op.Output.(qOutput)
		var set []int
		for _, o := range ops {
			oin, oout := o.Input.(qInput), o.Output.(qOutput)
			switch {
			case in.op == qDequeue && !out.ok && !out.closed && oin.op == qEnqueue && oout.enq == enqOK && overlaps(op, o):
				set = append(set, oin.v)
			case in.op == qEnqueue && out.enq == enqFull && oin.op == qDequeue && oout.ok && overlaps(op, o):
				set = append(set, oout.v)
			}
		}
		in.overlap = set
		ops[i].Input = in
	}
	return ops
}

// TestQueueLinearizable records many short concurrent histories of
// TryEnqueue, Enqueue, TryDequeue, Dequeue, Close and Drain on small
// queues (so that they fill, wrap and empty often) and checks each with
// porcupine.
func TestQueueLinearizable(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 100
	}
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range rounds {
			capacity := 2 << (round % 2)
			q, err := accept.NewQueue[int](capacity)
			require.NoError(t, err)
			history := recordHistory(q, uint64(round), 4, 7)
			check(t, linModel(capacity), history, fmt.Sprintf("round %d", round))
		}
	})
}

// check is porctest.Check that also logs the history, one operation a
// line, when it fails.
func check(t *testing.T, m porcupine.Model, history []porcupine.Operation, what string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("%s: history:\n%s", what, describe(m, history))
		}
	}()
	porctest.Check(t, m, history, 10*time.Second)
}

func describe(m porcupine.Model, ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	s := ""
	for _, op := range ops {
		s += fmt.Sprintf("  [%3d,%3d] client %d: %s\n", op.Call, op.Return, op.ClientId, m.DescribeOperation(op.Input, op.Output))
	}
	return s
}

// The model rejects the histories a broken queue would produce, and
// accepts the slack the ring is allowed.
func TestQueueModelRejects(t *testing.T) {
	m := linModel(2)
	op := func(client int, call, ret int64, in qInput, out qOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	enq := func(v int) qInput { return qInput{op: qEnqueue, v: v} }
	deq := qInput{op: qDequeue}
	got := func(v int) qOutput { return qOutput{v: v, ok: true} }
	full := qOutput{enq: enqFull}
	// closeOf is an enqueue of 1, then a Close by client at [call, ret].
	closeOf := func(client int, call, ret int64) []porcupine.Operation {
		return []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(client, call, ret, qInput{op: qCloseEnq}, qOutput{}), op(client, call, ret, qInput{op: qCloseDeq}, qOutput{})}
	}
	for _, c := range []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"FIFO", true, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}), op(0, 3, 4, enq(2), qOutput{}),
			op(1, 5, 6, deq, got(1)), op(1, 7, 8, deq, got(2))}},
		{"LIFO", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}), op(0, 3, 4, enq(2), qOutput{}),
			op(1, 5, 6, deq, got(2))}},
		{"concurrent enqueues in either order", true, []porcupine.Operation{op(0, 1, 4, enq(1), qOutput{}), op(1, 2, 3, enq(2), qOutput{}),
			op(2, 5, 6, deq, got(2)), op(2, 7, 8, deq, got(1))}},
		{"duplicate", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, deq, got(1)), op(2, 5, 6, deq, got(1))}},
		{"value never enqueued", false, []porcupine.Operation{op(1, 3, 4, deq, got(7))}},
		{"empty after a completed enqueue", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, deq, qOutput{})}},
		{"empty while the head's enqueue is in flight", true, withOverlaps([]porcupine.Operation{op(0, 1, 6, enq(1), qOutput{}),
			op(1, 2, 3, enq(2), qOutput{}), op(2, 4, 5, deq, qOutput{})})},
		{"empty while only a later enqueue is in flight", false, withOverlaps([]porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 8, enq(2), qOutput{}), op(2, 4, 5, deq, qOutput{})})},
		{"full", true, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}), op(0, 3, 4, enq(2), qOutput{}),
			op(0, 5, 6, enq(3), full)}},
		{"full with room", false, withOverlaps([]porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}), op(0, 3, 4, enq(2), qOutput{}),
			op(1, 5, 6, deq, got(1)), op(0, 7, 8, enq(3), full)})},
		{"full while the oldest cell's dequeue is in flight", true, withOverlaps([]porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(0, 3, 4, enq(2), qOutput{}), op(1, 5, 10, deq, got(1)), op(0, 7, 8, enq(3), full)})},
		{"full while a newer dequeue is in flight", false, withOverlaps([]porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(0, 3, 4, enq(2), qOutput{}), op(1, 5, 6, deq, got(1)), op(1, 7, 12, deq, got(2)), op(0, 9, 10, enq(3), full)})},
		{"drain after close returns everything", true, append(closeOf(1, 3, 4), op(0, 5, 6, enq(2), qOutput{enq: enqClosed}),
			op(1, 7, 8, qInput{op: qDrain}, got(1)), op(1, 7, 8, qInput{op: qDrained}, qOutput{}))},
		{"drain loses a value", false, append(closeOf(1, 3, 4), op(1, 7, 8, qInput{op: qDrained}, qOutput{}))},
		{"drain before close", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, qInput{op: qDrain}, got(1)), op(1, 5, 6, qInput{op: qCloseEnq}, qOutput{})}},
		{"dequeue sees closed with a value left, for Drain", true, append(closeOf(1, 3, 4),
			op(2, 5, 6, deq, qOutput{closed: true}), op(1, 7, 8, qInput{op: qDrain}, got(1)), op(1, 7, 8, qInput{op: qDrained}, qOutput{}))},
		{"dequeue after close takes a value", false, append(closeOf(1, 3, 4), op(2, 5, 6, deq, got(1)))},
		{"dequeue during close takes a value after a failed enqueue", true, append(closeOf(1, 3, 10),
			op(0, 4, 5, enq(2), qOutput{enq: enqClosed}), op(2, 6, 7, deq, got(1)))},
		{"dequeue sees closed before close", false, []porcupine.Operation{op(2, 1, 2, deq, qOutput{closed: true}),
			op(1, 3, 4, qInput{op: qCloseEnq}, qOutput{}), op(1, 3, 4, qInput{op: qCloseDeq}, qOutput{})}},
		{"enqueue after close", false, []porcupine.Operation{op(1, 1, 2, qInput{op: qCloseEnq}, qOutput{}),
			op(1, 1, 2, qInput{op: qCloseDeq}, qOutput{}), op(0, 3, 4, enq(1), qOutput{})}},
		{"closed before close", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{enq: enqClosed}),
			op(1, 3, 4, qInput{op: qCloseEnq}, qOutput{}), op(1, 3, 4, qInput{op: qCloseDeq}, qOutput{})}},
	} {
		require.Equal(t, c.ok, porcupine.CheckOperations(m, c.ops), c.name)
	}
}

// brokenQueue is a mutex-guarded queue with one deliberate bug, to show
// that the harness and model catch a real implementation's mistakes.
type brokenQueue struct {
	mu     sync.Mutex
	items  []int
	cap    int
	closed bool
	bug    string
	n      int
}

func (b *brokenQueue) TryEnqueue(v int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return accept.ErrClosed
	case len(b.items) == b.cap:
		return accept.ErrQueueFull
	}
	b.items = append(b.items, v)
	return nil
}

func (b *brokenQueue) TryDequeue() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) == 0 || b.closed && b.bug != "dequeue after close" {
		return 0, false
	}
	b.n++
	switch {
	case b.bug == "lifo":
		v := b.items[len(b.items)-1]
		b.items = b.items[:len(b.items)-1]
		return v, true
	case b.bug == "duplicate" && b.n%3 == 0:
		return b.items[0], true // left in place
	case b.bug == "spurious empty" && b.n%3 == 0:
		b.n++
		return 0, false
	}
	v := b.items[0]
	b.items = b.items[1:]
	return v, true
}

func (b *brokenQueue) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return accept.ErrClosed
	}
	b.closed = true
	return nil
}

func (b *brokenQueue) Drain() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.items
	b.items = nil
	if b.bug == "lossy drain" && len(out) > 0 {
		out = out[1:]
	}
	return out
}

func TestQueueLinearizabilityCatchesBrokenQueues(t *testing.T) {
	for round := range 20 {
		history := recordHistory(&brokenQueue{cap: 4}, uint64(round), 4, 7)
		check(t, linModel(4), history, fmt.Sprintf("correct stand-in, round %d", round))
	}
	for _, bug := range []string{"lifo", "duplicate", "spurious empty", "lossy drain", "dequeue after close"} {
		t.Run(bug, func(t *testing.T) {
			for round := range 200 {
				history := recordHistory(&brokenQueue{cap: 4, bug: bug}, uint64(round), 4, 7)
				if porcupine.CheckOperationsTimeout(linModel(4), history, 10*time.Second) == porcupine.Illegal {
					return
				}
			}
			t.Fatalf("no history of a queue with bug %q was rejected", bug)
		})
	}
}

// jitterWord is what jitter's busy waits load.
var jitterWord atomic.Int64

// jitter varies the interleaving after a recorded operation, by bits of
// the operation's random word x: a yield, a short busy wait, or nothing.
func jitter(x uint64) {
	switch x >> 30 & 3 {
	case 0:
		runtime.Gosched()
	case 1:
		for range x >> 40 & 63 {
			jitterWord.Load()
		}
	}
}
