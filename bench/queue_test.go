package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	xsync3 "github.com/puzpuzpuz/xsync/v3"
	xsync4 "github.com/puzpuzpuz/xsync/v4"

	"github.com/socktable/socktable/accept"
)

const queueCapacity = 1024

// queueImpl moves n items through a queue: produce enqueues n items,
// waiting the implementation's way while it is full; consume dequeues n,
// waiting its way while it is empty.
type queueImpl struct {
	produce func(n int)
	consume func(n int) int
}

// queueItems are what the queues carry: pointers to sockets, as an accept
// queue does.
var queueItems = func() []*sock {
	s := make([]*sock, queueCapacity)
	for i := range s {
		s[i] = &sock{id: i}
	}
	return s
}()

func newQueueImpl(b *testing.B, impl string) queueImpl {
	items := queueItems
	switch impl {
	case "socktable":
		// Producers block in Enqueue and consumers in Dequeue, which both
		// park (after a short spin, for Dequeue) until the other side
		// wakes them. (An accept queue's receive path uses TryEnqueue and
		// drops on ErrQueueFull instead.)
		q, err := accept.NewQueue[*sock](queueCapacity)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		return queueImpl{
			produce: func(n int) {
				for i := range n {
					if err := q.Enqueue(ctx, items[i&(queueCapacity-1)]); err != nil {
						panic(err)
					}
				}
			},
			consume: func(n int) int {
				sum := 0
				for range n {
					s, err := q.Dequeue(ctx)
					if err != nil {
						panic(err)
					}
					sum += s.id
				}
				return sum
			},
		}
	case "chan":
		ch := make(chan *sock, queueCapacity)
		return queueImpl{
			produce: func(n int) {
				for i := range n {
					ch <- items[i&(queueCapacity-1)]
				}
			},
			consume: func(n int) int {
				sum := 0
				for range n {
					sum += (<-ch).id
				}
				return sum
			},
		}
	case "xsync":
		// xsync v3's blocking Enqueue and Dequeue (deprecated there in favour
		// of TryEnqueue/TryDequeue with runtime.Gosched, which they do).
		q := xsync3.NewMPMCQueueOf[*sock](queueCapacity)
		return queueImpl{
			produce: func(n int) {
				for i := range n {
					q.Enqueue(items[i&(queueCapacity-1)]) //lint:ignore SA1019 the baseline's own blocking call
				}
			},
			consume: func(n int) int {
				sum := 0
				for range n {
					sum += q.Dequeue().id //lint:ignore SA1019 the baseline's own blocking call
				}
				return sum
			},
		}
	case "xsyncv4":
		// xsync v4 has only TryEnqueue and TryDequeue: retry after
		// runtime.Gosched, as its docs say.
		q := xsync4.NewMPMCQueue[*sock](queueCapacity)
		return queueImpl{
			produce: func(n int) {
				for i := range n {
					for !q.TryEnqueue(items[i&(queueCapacity-1)]) {
						runtime.Gosched()
					}
				}
			},
			consume: func(n int) int {
				sum := 0
				for range n {
					s, ok := q.TryDequeue()
					for !ok {
						runtime.Gosched()
						s, ok = q.TryDequeue()
					}
					sum += s.id
				}
				return sum
			},
		}
	}
	b.Fatalf("unknown impl %q", impl)
	return queueImpl{}
}

// BenchmarkQueue: b.N items through a bounded MPMC queue of 1024 from p
// producers to c consumers (each producer and consumer a goroutine, the
// items split evenly), every implementation waiting its natural way
// (see newQueueImpl). ns/op is per item, for the whole pipeline.
func BenchmarkQueue(b *testing.B) {
	for _, p := range []int{1, 2} {
		for _, c := range []int{1, 2} {
			for _, impl := range []string{"socktable", "chan", "xsync", "xsyncv4"} {
				b.Run(fmt.Sprintf("p=%d/c=%d/impl=%s", p, c, impl), func(b *testing.B) {
					q := newQueueImpl(b, impl)
					var wg sync.WaitGroup
					startTiming(b)
					for i := range p {
						wg.Go(func() { q.produce(share(b.N, p, i)) })
					}
					for i := range c {
						wg.Go(func() { queueSink.Add(int64(q.consume(share(b.N, c, i)))) })
					}
					wg.Wait()
				})
			}
		}
	}
}

var queueSink atomic.Int64 // sink for what the consumers took

// share is worker i's part of n items split among k workers.
func share(n, k, i int) int {
	s := n / k
	if i < n%k {
		s++
	}
	return s
}
