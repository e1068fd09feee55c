package fuzz

import (
	"context"
	"errors"
	"testing"

	"github.com/socktable/socktable/accept"
)

// FuzzQueue runs a program decoded from the fuzzer's bytes against an
// accept.Queue and a slice: the first byte picks the capacity (1 to 64,
// which NewQueue rounds up to a power of two), each later byte is an
// operation (TryEnqueue, Enqueue, TryDequeue, Dequeue, Close, Drain, Len)
// in its low 3 bits. On one goroutine the queue is an exact FIFO of Cap
// items, which reports ErrQueueFull once full (Enqueue, given a done ctx
// there, its ctx's error); once closed, enqueues report ErrClosed and
// dequeues find nothing, and Drain returns what the slice holds. Dequeue
// and Enqueue get a done ctx wherever they would block.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 0, 1, 2, 0, 3, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0, 1, 0, 1, 2, 2, 4, 0, 0, 3, 3, 2})
	f.Add([]byte{63, 0, 8, 16, 24, 32, 1, 9, 4, 0, 3})
	f.Add([]byte{1, 6, 6, 6, 1, 6, 2, 2, 2, 4, 3, 6})
	f.Add([]byte{2, 0, 0, 0, 7, 0, 3, 1, 2, 3, 7, 7, 4})
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) == 0 {
			return
		}
		q, err := accept.NewQueue[int](int(program[0])%64 + 1)
		if err != nil {
			t.Fatal(err)
		}
		if q.Cap() < int(program[0])%64+1 || q.Cap()&(q.Cap()-1) != 0 {
			t.Fatalf("Cap %d for capacity %d", q.Cap(), int(program[0])%64+1)
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		var model []int
		closed := false
		next := 0
		for _, b := range program[1:] {
			switch b & 7 {
			case 0, 5, 6: // enqueue most often, so that queues fill
				next++
				var err error
				full := accept.ErrQueueFull
				if b&7 == 6 {
					ctx := context.Background()
					if len(model) == q.Cap() && !closed {
						ctx = cancelled // it would block forever
					}
					err, full = q.Enqueue(ctx, next), context.Canceled
				} else {
					err = q.TryEnqueue(next)
				}
				switch {
				case closed:
					if !errors.Is(err, accept.ErrClosed) {
						t.Fatalf("enqueue after Close: %v", err)
					}
				case len(model) == q.Cap():
					if !errors.Is(err, full) {
						t.Fatalf("enqueue on a full queue: %v, want %v", err, full)
					}
				case err != nil:
					t.Fatalf("enqueue with %d of %d: %v", len(model), q.Cap(), err)
				default:
					model = append(model, next)
				}
			case 1:
				v, ok := q.TryDequeue()
				if ok != (len(model) > 0 && !closed) || ok && v != model[0] {
					t.Fatalf("TryDequeue: %d, %v; model %v", v, ok, model)
				}
				if ok {
					model = model[1:]
				}
			case 2:
				ctx := context.Background()
				if len(model) == 0 && !closed {
					ctx = cancelled // it would block forever
				}
				v, err := q.Dequeue(ctx)
				switch {
				case closed:
					if !errors.Is(err, accept.ErrClosed) {
						t.Fatalf("Dequeue on a closed queue: %d, %v", v, err)
					}
				case len(model) > 0:
					if err != nil || v != model[0] {
						t.Fatalf("Dequeue: %d, %v; model %v", v, err, model)
					}
					model = model[1:]
				case !errors.Is(err, context.Canceled):
					t.Fatalf("Dequeue on an empty queue, ctx done: %v", err)
				}
			case 3:
				err := q.Close()
				if closed && !errors.Is(err, accept.ErrClosed) || !closed && err != nil {
					t.Fatalf("Close: %v (closed before: %v)", err, closed)
				}
				closed = true
			case 7:
				got := q.Drain()
				if len(got) != len(model) {
					t.Fatalf("Drain returned %v; model %v", got, model)
				}
				for i := range got {
					if got[i] != model[i] {
						t.Fatalf("Drain returned %v; model %v", got, model)
					}
				}
				model = nil
				fallthrough
			case 4:
				if q.Len() != len(model) {
					t.Fatalf("Len %d; model %d", q.Len(), len(model))
				}
			}
		}
	})
}
