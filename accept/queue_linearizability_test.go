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
)

// The porcupine model of a Queue: a FIFO of at most Cap values, and a
// closed flag.
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
//   - An ErrFull TryEnqueue takes effect when it reads tail = t. The cell
//     for t is still held by the item of position t-Cap: either that item
//     is still queued (the queue is full), or the dequeue that claimed it
//     has not released the cell yet and is in flight at that moment. The
//     model keeps the values of the last Cap dequeued positions, and
//     accepts ErrFull on a queue of n < Cap values only if the value
//     dequeued from position t-Cap (the (Cap-n)-th most recent) was
//     dequeued by a call that overlapped the TryEnqueue.
//
// Enqueue and Dequeue, run with contexts cancelled after a few yields, are
// checked as the same operations: a nil return as a TryEnqueue or a
// TryDequeue that succeeded, a ctx error as the failed TryEnqueue or
// TryDequeue they made before waiting (with the same slack), and a
// Dequeue's ErrClosed as taking effect on a closed, empty queue.
//
// Close is recorded as three kinds of operation, all with Close's call
// and return times: close (the closed bit: enqueues after it fail), one
// drain per value Close returned (a dequeue that must find that value at
// the head), and drained (the queue is closed and empty). Dequeues running
// concurrently with Close may take values between Close's drains, so
// Close is not one atomic step; drained is what shows a Close that left a
// value behind.
//
// The overlap sets are computed from the recorded call and return times,
// which enclose the real calls: an overlap the real calls had is always
// seen, so the model never rejects a history the ring can produce.

type qOp uint8

const (
	qEnqueue qOp = iota
	qDequeue
	qClose
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
	// that overlapped it. qEnqueue that got ErrFull: the values returned by
	// dequeues that overlapped it.
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
	items  string
	recent string
	closed bool
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
					return s.closed, s
				case enqOK:
					if s.closed || len(s.items) == capacity {
						return false, s
					}
					s.items += string([]byte{byte(in.v)}) // not string(byte): that would encode a rune
					return true, s
				case enqFull:
					if s.closed {
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
					return s.closed && len(s.items) == 0, s
				}
				if !out.ok {
					return len(s.items) == 0 || slices.Contains(in.overlap, int(s.items[0])), s
				}
				if len(s.items) == 0 || int(s.items[0]) != out.v {
					return false, s
				}
				return true, pop(s)
			case qClose:
				if s.closed {
					return false, s
				}
				s.closed = true
				return true, s
			case qDrain:
				if !s.closed || len(s.items) == 0 || int(s.items[0]) != out.v {
					return false, s
				}
				return true, pop(s)
			case qDrained:
				return s.closed && len(s.items) == 0, s
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
			case qClose:
				return "close"
			case qDrain:
				return fmt.Sprintf("close drains %d", out.v)
			}
			return "close done"
		},
		DescribeState: func(state any) string {
			s := state.(qState)
			return fmt.Sprintf("%v closed=%v", []byte(s.items), s.closed)
		},
	}
}

// fifo is what the harness drives: a Queue, or a broken stand-in.
type fifo interface {
	TryEnqueue(v int) error
	TryDequeue() (int, bool)
	Close() []int
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

// recordHistory runs clients goroutines of ops operations each (random
// enqueues of fresh values and dequeues; client 0 closes the queue at a
// random point), all started at once, and returns the history with the
// overlap sets filled in.
func recordHistory(q fifo, seed uint64, clients, ops int) []porcupine.Operation {
	var clock atomic.Int64
	histories := make([][]porcupine.Operation, clients)
	var ready atomic.Int32
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*0x9e3779b97f4a7c15 + uint64(c)*0xbf58476d1ce4e5b9 | 1
			closeAt := -1
			if c == 0 {
				closeAt = int(seed>>3%uint64(2*ops)) + 1 // sometimes never
			}
			// Start together: a goroutine that ran all its calls before the
			// next one started would record a sequential history.
			ready.Add(1)
			for spins := 0; ready.Load() < int32(clients); spins++ {
				if spins%64 == 0 {
					runtime.Gosched()
				}
			}
			for i := range ops {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				call := clock.Add(1)
				if x>>50&7 == 0 {
					// Yield inside the recorded interval: other clients' calls
					// then overlap this one even on a single P.
					runtime.Gosched()
				}
				if i == closeAt {
					drained := q.Close()
					ret := clock.Add(1)
					h := append(histories[c], porcupine.Operation{ClientId: c, Input: qInput{op: qClose}, Output: qOutput{}, Call: call, Return: ret})
					for _, v := range drained {
						h = append(h, porcupine.Operation{ClientId: c, Input: qInput{op: qDrain}, Output: qOutput{v: v}, Call: call, Return: ret})
					}
					histories[c] = append(h, porcupine.Operation{ClientId: c, Input: qInput{op: qDrained}, Output: qOutput{}, Call: call, Return: ret})
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
					case errors.Is(err, accept.ErrFull), errors.Is(err, context.Canceled):
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
				ret := clock.Add(1)
				histories[c] = append(histories[c], porcupine.Operation{ClientId: c, Input: in, Output: out, Call: call, Return: ret})
				jitter(x, &clock)
			}
		}()
	}
	wg.Wait()
	var all []porcupine.Operation
	for _, h := range histories {
		all = append(all, h...)
	}
	return withOverlaps(all)
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
// TryEnqueue, TryDequeue and Close on small queues (so that they fill,
// wrap and empty often) and checks each with porcupine.
func TestQueueLinearizable(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 100
	}
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for round := range rounds {
				capacity := 2 << (round % 2)
				q, err := accept.NewQueue[int](capacity)
				require.NoError(t, err)
				history := recordHistory(q, uint64(round), 4, 7)
				res := porcupine.CheckOperationsTimeout(linModel(capacity), history, 10*time.Second)
				require.Equal(t, porcupine.Ok, res, "round %d: history not linearizable:\n%s", round, describe(linModel(capacity), history))
			}
		})
	}
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
		{"close returns everything", true, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(1, 3, 4, qInput{op: qDrain}, got(1)), op(1, 3, 4, qInput{op: qDrained}, qOutput{}),
			op(0, 5, 6, enq(2), qOutput{enq: enqClosed})}},
		{"close loses a value", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(1, 3, 4, qInput{op: qDrained}, qOutput{})}},
		{"dequeue sees closed with a value left", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(2, 5, 6, deq, qOutput{closed: true})}},
		{"dequeue sees closed once drained", true, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(1, 3, 4, qInput{op: qDrain}, got(1)),
			op(1, 3, 4, qInput{op: qDrained}, qOutput{}), op(2, 5, 6, deq, qOutput{closed: true})}},
		{"dequeue sees closed before close", false, []porcupine.Operation{op(2, 1, 2, deq, qOutput{closed: true}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(1, 3, 4, qInput{op: qDrained}, qOutput{})}},
		{"enqueue after close", false, []porcupine.Operation{op(1, 1, 2, qInput{op: qClose}, qOutput{}),
			op(1, 1, 2, qInput{op: qDrained}, qOutput{}), op(0, 3, 4, enq(1), qOutput{})}},
		{"closed before close", false, []porcupine.Operation{op(0, 1, 2, enq(1), qOutput{enq: enqClosed}),
			op(1, 3, 4, qInput{op: qClose}, qOutput{}), op(1, 3, 4, qInput{op: qDrained}, qOutput{})}},
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
		return accept.ErrFull
	}
	b.items = append(b.items, v)
	return nil
}

func (b *brokenQueue) TryDequeue() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) == 0 {
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

func (b *brokenQueue) Close() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	out := b.items
	b.items = nil
	if b.bug == "lossy close" && len(out) > 0 {
		out = out[1:]
	}
	return out
}

func TestQueueLinearizabilityCatchesBrokenQueues(t *testing.T) {
	for _, bug := range []string{"lifo", "duplicate", "spurious empty", "lossy close"} {
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

// jitter varies the interleaving after a recorded operation, by bits of
// the operation's random word x: a yield, a short busy wait on the
// history's clock, or nothing.
func jitter(x uint64, clock *atomic.Int64) {
	switch x >> 30 & 3 {
	case 0:
		runtime.Gosched()
	case 1:
		for range x >> 40 & 63 {
			clock.Load()
		}
	}
}
