package rcu_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socktable/socktable/rcu"
)

// BenchmarkRCUEnterExit measures one empty read-side critical section on
// every core at once: impl=socktable is Domain.Enter/Exit;
// impl=socktable-reader is Reader.Enter/Exit (one stripe per goroutine); impl=rwmutex is
// sync.RWMutex.RLock/RUnlock (one shared reader count); impl=atomic is a
// single shared atomic counter incremented and decremented, the cost of a
// design that does not stripe.
func BenchmarkRCUEnterExit(b *testing.B) {
	b.Run("impl=socktable", func(b *testing.B) {
		d := rcu.NewDomain()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Enter().Exit()
			}
		})
	})
	b.Run("impl=socktable-reader", func(b *testing.B) {
		d := rcu.NewDomain()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := d.NewReader()
			for pb.Next() {
				r.Enter().Exit()
			}
		})
	})
	b.Run("impl=rwmutex", func(b *testing.B) {
		var mu sync.RWMutex
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.RLock()
				//lint:ignore SA2001 an empty critical section is what is measured
				mu.RUnlock()
			}
		})
	})
	b.Run("impl=atomic", func(b *testing.B) {
		var readers atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				readers.Add(1)
				readers.Add(-1)
			}
		})
	})
}

// BenchmarkRCUSynchronize measures a grace period with readers entering
// and leaving on the other cores.
func BenchmarkRCUSynchronize(b *testing.B) {
	d := rcu.NewDomain()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				d.Enter().Exit()
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		d.Synchronize()
	}
	close(stop)
	wg.Wait()
}

// BenchmarkRecyclerRetireReuse measures one recycling round trip with no
// reader inside.
func BenchmarkRecyclerRetireReuse(b *testing.B) {
	d := rcu.NewDomain()
	r, err := rcu.NewRecycler[int](d, 1024)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Retire(i)
		i++
		r.Reuse()
	}
}
