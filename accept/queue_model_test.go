package accept_test

import (
	"context"
	"errors"
	"math/bits"
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/accept"
)

// queueModel runs random TryEnqueue, Enqueue, TryDequeue, Dequeue, Close,
// Drain, Len and Cap calls, one at a time, against a slice: on one
// goroutine the queue is an exact FIFO of Cap items (no in-flight
// windows), which rejects enqueues once full, and every enqueue and
// dequeue once closed, keeping what it holds for Drain.
type queueModel struct {
	q      *accept.Queue[int]
	items  []int
	cap    int
	closed bool
	next   int
}

func (m *queueModel) actions() map[string]func(*rapid.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	return map[string]func(*rapid.T){
		"TryEnqueue": func(t *rapid.T) {
			m.next++
			err := m.q.TryEnqueue(m.next)
			switch {
			case m.closed:
				if !errors.Is(err, accept.ErrClosed) {
					t.Fatalf("TryEnqueue after Close: %v, want ErrClosed", err)
				}
			case len(m.items) == m.cap:
				if !errors.Is(err, accept.ErrQueueFull) {
					t.Fatalf("TryEnqueue on a full queue: %v, want ErrQueueFull", err)
				}
			default:
				if err != nil {
					t.Fatalf("TryEnqueue with %d of %d: %v", len(m.items), m.cap, err)
				}
				m.items = append(m.items, m.next)
			}
		},
		"Enqueue": func(t *rapid.T) {
			// With a done ctx, so that it cannot block on a full queue.
			ctx := context.Background()
			if len(m.items) == m.cap && !m.closed {
				ctx = cancelled
			}
			m.next++
			err := m.q.Enqueue(ctx, m.next)
			switch {
			case m.closed:
				if !errors.Is(err, accept.ErrClosed) {
					t.Fatalf("Enqueue after Close: %v, want ErrClosed", err)
				}
			case len(m.items) == m.cap:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Enqueue on a full queue with a done ctx: %v, want context.Canceled", err)
				}
			default:
				if err != nil {
					t.Fatalf("Enqueue with %d of %d: %v", len(m.items), m.cap, err)
				}
				m.items = append(m.items, m.next)
			}
		},
		"TryDequeue": func(t *rapid.T) {
			v, ok := m.q.TryDequeue()
			if m.closed {
				if ok {
					t.Fatalf("TryDequeue after Close returned %d", v)
				}
				return
			}
			m.checkDequeue(t, v, ok, "TryDequeue")
		},
		"Dequeue": func(t *rapid.T) {
			// With a done ctx, so that it cannot block on an empty queue.
			ctx := context.Background()
			if len(m.items) == 0 && !m.closed {
				ctx = cancelled
			}
			v, err := m.q.Dequeue(ctx)
			switch {
			case m.closed:
				if !errors.Is(err, accept.ErrClosed) {
					t.Fatalf("Dequeue on a closed queue: %d, %v, want ErrClosed", v, err)
				}
			case len(m.items) > 0:
				if err != nil {
					t.Fatalf("Dequeue with %d items: %v", len(m.items), err)
				}
				m.checkDequeue(t, v, true, "Dequeue")
			default:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Dequeue on an empty queue with a done ctx: %v, want context.Canceled", err)
				}
			}
		},
		"Close": func(t *rapid.T) {
			if !m.closed && rapid.IntRange(0, 3).Draw(t, "closeNow") != 0 {
				t.Skip("close rarely, so that runs go on past it")
			}
			err := m.q.Close()
			if m.closed != errors.Is(err, accept.ErrClosed) || !m.closed && err != nil {
				t.Fatalf("Close: %v (closed before: %v)", err, m.closed)
			}
			m.closed = true
		},
		"Drain": func(t *rapid.T) {
			got := m.q.Drain()
			want := m.items
			if len(want) == 0 {
				want = nil
			}
			if !equalInts(got, want) {
				t.Fatalf("Drain returned %v, want %v", got, want)
			}
			m.items = nil
		},
		"": func(t *rapid.T) {
			if n := m.q.Len(); n != len(m.items) {
				t.Fatalf("Len %d, model %d", n, len(m.items))
			}
			if c := m.q.Cap(); c != m.cap {
				t.Fatalf("Cap %d, model %d", c, m.cap)
			}
		},
	}
}

func (m *queueModel) checkDequeue(t *rapid.T, v int, ok bool, op string) {
	if len(m.items) == 0 {
		if ok {
			t.Fatalf("%s on an empty queue returned %d", op, v)
		}
		return
	}
	if !ok || v != m.items[0] {
		t.Fatalf("%s returned %d, %v; want %d", op, v, ok, m.items[0])
	}
	m.items = m.items[1:]
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQueueModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 9).Draw(t, "capacity")
		q, err := accept.NewQueue[int](capacity)
		if err != nil {
			t.Fatal(err)
		}
		m := &queueModel{q: q, cap: max(2, 1<<bits.Len(uint(capacity-1)))}
		t.Repeat(m.actions())
	})
}
