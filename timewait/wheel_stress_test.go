package timewait

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// Goroutines schedule, cancel and reschedule while another advances the
// clock: every timer ends exactly once, either cancelled (Cancel reported
// true) or fired, never both, never twice, and none is left pending.
func TestWheelConcurrentExactlyOnce(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		const workers, perWorker = 4, 3000
		clock := &ManualClock{}
		ended := make([]atomic.Int32, workers*perWorker)
		w, err := NewWheel(WheelOptions{Clock: clock, Shards: 3, Expire: func(batch []Expired) {
			for _, e := range batch {
				ended[e.Data].Add(1)
			}
		}})
		require.NoError(t, err)
		defer w.Close()
		stop := make(chan struct{})
		var advancer sync.WaitGroup
		advancer.Add(1)
		go func() {
			defer advancer.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				clock.Advance(time.Millisecond)
				w.Advance()
			}
		}()
		var wg sync.WaitGroup
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := porctest.NewRand(uint64(g))
				for i := range perWorker {
					x := rnd.Next()
					data := uint64(g*perWorker + i)
					tm, err := w.ScheduleAfter(time.Duration(x%50)*time.Millisecond, data)
					if err != nil {
						t.Error(err)
						return
					}
					switch x >> 8 % 3 {
					case 0:
						if w.Cancel(tm) {
							ended[data].Add(1)
						}
					case 1:
						w.Reschedule(tm, time.Duration(x>>16%200)*time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		advancer.Wait()
		clock.Advance(time.Hour)
		w.Advance()
		require.Zero(t, w.Len())
		for i := range ended {
			require.Equal(t, int32(1), ended[i].Load(), "timer %d ended %d times", i, ended[i].Load())
		}
	})
}
