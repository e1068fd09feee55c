package timewait

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// The porcupine model of a one-shard Wheel: the set of pending timers with
// their due ticks. Timers are numbered 1 to wlMaxTimers-1 (each number is
// scheduled once); an Advance to tick to fires exactly the pending timers
// due at or before to, and no other. The test keeps every timer within
// level 0's reach (due at most 40 ticks ahead, the clock moving at most 5
// ticks an Advance), where a wheel fires at the due tick itself, so the
// model needs no granularity.

type wlOp uint8

const (
	wlSchedule wlOp = iota
	wlCancel
	wlReschedule
	wlAdvance
)

var wlOpNames = [...]string{"schedule", "cancel", "reschedule", "advance"}

const wlMaxTimers = 32

type wlInput struct {
	op  wlOp
	id  int   // Schedule, Cancel, Reschedule
	due int64 // Schedule, Reschedule: the due tick; Advance: the tick advanced to
}

type wlOutput struct {
	ok    bool   // Schedule: no error; Cancel, Reschedule: the result
	fired uint32 // Advance: the timers fired, a bit per number
}

// wlState is the due tick of each pending timer, by number (0: not pending).
type wlState [wlMaxTimers]int64

var wheelLinModel = porcupine.Model{
	Init: func() any { return wlState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(wlState), input.(wlInput), output.(wlOutput)
		switch in.op {
		case wlSchedule:
			if s[in.id] != 0 || !out.ok {
				return false, s
			}
			s[in.id] = in.due
			return true, s
		case wlCancel:
			ok := s[in.id] != 0
			s[in.id] = 0
			return out.ok == ok, s
		case wlReschedule:
			ok := s[in.id] != 0
			if ok {
				s[in.id] = in.due
			}
			return out.ok == ok, s
		case wlAdvance:
			var due uint32
			for id, at := range s {
				if at != 0 && at <= in.due {
					due |= 1 << id
					s[id] = 0
				}
			}
			return out.fired == due, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(wlInput), output.(wlOutput)
		if in.op == wlAdvance {
			return fmt.Sprintf("advance(%d) -> %b", in.due, out.fired)
		}
		return fmt.Sprintf("%s(#%d @%d) -> %v", wlOpNames[in.op], in.id, in.due, out.ok)
	},
}

// TestWheelLinearizable records concurrent histories of Schedule, Cancel
// and Reschedule (of a goroutine's own timers and of the others') while
// another goroutine moves the clock and calls Advance, on a one-shard
// wheel, and checks them with porcupine: every Advance fires exactly the
// timers due at its reading of the clock, as of one instant.
func TestWheelLinearizable(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range rounds {
			checkWheelLinearizable(t, uint64(round))
		}
	})
}

func checkWheelLinearizable(t *testing.T, seed uint64) {
	const workers, opsPerWorker, timersPerWorker, advances = 3, 14, 10, 10
	clock := new(ManualClock)
	clock.Set(time.Hour + 7*time.Millisecond)
	var fired uint32 // written by Expire, on the advancer's goroutine
	w, err := NewWheel(WheelOptions{Clock: clock, Shards: 1, Expire: func(batch []Expired) {
		for _, e := range batch {
			fired |= 1 << e.Data
		}
	}})
	require.NoError(t, err)
	defer w.Close()
	var handles [wlMaxTimers]atomic.Uint64 // published once Schedule has returned
	rec := porctest.NewRecorder(workers + 1)
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(workers + 1)
	go func() { // the advancer: client workers
		defer wg.Done()
		<-start
		rnd := porctest.NewRand(seed*977 + 13)
		for range advances {
			runtime.Gosched()
			now := clock.Advance(time.Duration(1+rnd.IntN(5)) * time.Millisecond)
			in := wlInput{op: wlAdvance, due: int64(now / time.Millisecond)}
			call := rec.Call()
			fired = 0
			w.Advance()
			rec.Return(workers, call, in, wlOutput{fired: fired})
		}
	}()
	for c := range workers {
		go func() {
			defer wg.Done()
			<-start
			rnd := porctest.NewRand(seed*131 + uint64(c))
			scheduled := 0
			for range opsPerWorker {
				// Due 1 to 40 ticks after the clock's reading: in level 0's reach.
				in := wlInput{op: wlOp(rnd.IntN(3)), due: int64(clock.Now()/time.Millisecond) + 1 + int64(rnd.IntN(40))}
				if in.op == wlSchedule && scheduled == timersPerWorker {
					in.op = wlCancel
				}
				var h Timer
				if in.op == wlSchedule {
					in.id = 1 + c*timersPerWorker + scheduled
					scheduled++
				} else {
					in.id = 1 + rnd.IntN(workers*timersPerWorker) // anyone's
					if h = Timer(handles[in.id].Load()); h == 0 {
						continue // not scheduled yet
					}
				}
				call := rec.Call()
				var out wlOutput
				switch in.op {
				case wlSchedule:
					tm, err := w.Schedule(time.Duration(in.due)*time.Millisecond, uint64(in.id))
					out.ok = err == nil
					if out.ok {
						handles[in.id].Store(uint64(tm))
					}
				case wlCancel:
					out.ok = w.Cancel(h)
				case wlReschedule:
					out.ok = w.Reschedule(h, time.Duration(in.due)*time.Millisecond)
				}
				rec.Return(c, call, in, out)
				if rnd.IntN(4) == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	porctest.Check(t, wheelLinModel, rec.History(), 10*time.Second)
}

// The model rejects a due timer left pending by an Advance, a cancelled
// timer that fires, a timer fired early and a Reschedule ignored: the
// checker is not vacuous. It accepts a Cancel that loses to a concurrent
// Advance.
func TestWheelLinearizabilityModelRejects(t *testing.T) {
	op := func(client int, in wlInput, out wlOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	sched := op(0, wlInput{op: wlSchedule, id: 1, due: 5}, wlOutput{ok: true}, 0, 1)
	for name, h := range map[string][]porcupine.Operation{
		"due timer not fired": {sched, op(1, wlInput{op: wlAdvance, due: 10}, wlOutput{}, 2, 3)},
		"cancelled timer fired": {sched, op(0, wlInput{op: wlCancel, id: 1}, wlOutput{ok: true}, 2, 3),
			op(1, wlInput{op: wlAdvance, due: 10}, wlOutput{fired: 1 << 1}, 4, 5)},
		"fired early": {sched, op(1, wlInput{op: wlAdvance, due: 4}, wlOutput{fired: 1 << 1}, 2, 3)},
		"fired twice": {sched, op(1, wlInput{op: wlAdvance, due: 5}, wlOutput{fired: 1 << 1}, 2, 3),
			op(1, wlInput{op: wlAdvance, due: 6}, wlOutput{fired: 1 << 1}, 4, 5)},
		"reschedule ignored": {sched, op(0, wlInput{op: wlReschedule, id: 1, due: 9}, wlOutput{ok: true}, 2, 3),
			op(1, wlInput{op: wlAdvance, due: 6}, wlOutput{fired: 1 << 1}, 4, 5)},
	} {
		require.False(t, porcupine.CheckOperations(wheelLinModel, h), name)
	}
	lost := []porcupine.Operation{sched, op(0, wlInput{op: wlCancel, id: 1}, wlOutput{ok: false}, 2, 5),
		op(1, wlInput{op: wlAdvance, due: 10}, wlOutput{fired: 1 << 1}, 3, 4)}
	require.True(t, porcupine.CheckOperations(wheelLinModel, lost))
}
