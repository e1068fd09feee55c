package bench

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable/accept"
)

// acceptBacklog is the listeners' backlog in BenchmarkAccept: Linux's
// somaxconn-limited default for a busy server.
const acceptBacklog = 1024

// BenchmarkAccept: one listener, two shards, a producer per shard (the
// softirq completing handshakes on that core) and two acceptors (the
// accept() loops), bound one per shard or both unbound. One op is one
// connection from Enqueue to Accept. Baselines: single-queue, one
// accept.Queue shared by every producer and acceptor (Linux's single
// accept queue per listener, lock-free); chan, a buffered channel.
// Producers that find the backlog full yield and retry, as a stack would
// drop the final ACK and let the client retransmit it.
func BenchmarkAccept(b *testing.B) {
	for _, acceptors := range []string{"bound", "unbound"} {
		for _, impl := range []string{"socktable", "single-queue", "chan"} {
			b.Run("shards=2/acceptors="+acceptors+"/impl="+impl, func(b *testing.B) {
				var enqueue func(shard, v int) bool
				var newAcceptor func(shard int) func(ctx context.Context) bool
				switch impl {
				case "socktable":
					l, err := accept.NewSharded[int](accept.ShardedOptions{Shards: 2, Backlog: acceptBacklog})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					enqueue = func(shard, v int) bool { return l.TryEnqueue(shard, v) == nil }
					newAcceptor = func(shard int) func(ctx context.Context) bool {
						if acceptors == "unbound" {
							shard = accept.Unbound
						}
						a, err := l.Register(shard)
						if err != nil {
							b.Fatal(err)
						}
						return func(ctx context.Context) bool { _, err := a.Accept(ctx); return err == nil }
					}
				case "single-queue":
					q, err := accept.NewQueue[int](acceptBacklog + 1)
					if err != nil {
						b.Fatal(err)
					}
					enqueue = func(_, v int) bool { return q.TryEnqueue(v) == nil }
					newAcceptor = func(int) func(ctx context.Context) bool {
						return func(ctx context.Context) bool { _, err := q.Dequeue(ctx); return err == nil }
					}
				case "chan":
					ch := make(chan int, acceptBacklog+1)
					enqueue = func(_, v int) bool {
						select {
						case ch <- v:
							return true
						default:
							return false
						}
					}
					newAcceptor = func(int) func(ctx context.Context) bool {
						return func(ctx context.Context) bool {
							select {
							case <-ch:
								return true
							case <-ctx.Done():
								return false
							}
						}
					}
				}
				runAcceptBenchmark(b, enqueue, newAcceptor)
			})
		}
	}
}

// runAcceptBenchmark runs two producers (shards 0 and 1) and two
// acceptors until b.N connections have been accepted.
func runAcceptBenchmark(b *testing.B, enqueue func(shard, v int) bool, newAcceptor func(shard int) func(context.Context) bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accs := []func(context.Context) bool{newAcceptor(0), newAcceptor(1)}
	b.ReportAllocs()
	b.ResetTimer()
	var taken atomic.Int64
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < b.N; i += 2 {
				for !enqueue(p, i) {
					runtime.Gosched()
				}
			}
		}()
	}
	for _, acc := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for acc(ctx) {
				if taken.Add(1) == int64(b.N) {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if taken.Load() != int64(b.N) {
		b.Fatalf("accepted %d of %d", taken.Load(), b.N)
	}
}
