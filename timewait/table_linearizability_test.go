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

// The porcupine model of one four-tuple of a Table: absent, or present
// with the RcvNxt it was entered with (each Enter uses a fresh value, so a
// stale or torn Lookup shows).

type twOp uint8

const (
	twEnter twOp = iota
	twKill
	twLookup
)

type twInput struct {
	op     twOp
	key    int
	rcvNxt uint32
}

type twOutput struct {
	ok    bool  // Enter: inserted; Kill, Lookup: found
	state State // Lookup: the state found
}

type twLinState struct {
	present bool
	rcvNxt  uint32
}

var twModel = porcupine.Model{
	Init: func() any { return twLinState{} },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) int { return in.(twInput).key })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(twLinState), input.(twInput), output.(twOutput)
		switch in.op {
		case twEnter:
			if s.present {
				return !out.ok, s
			}
			return out.ok, twLinState{present: true, rcvNxt: in.rcvNxt}
		case twKill:
			return out.ok == s.present, twLinState{}
		case twLookup:
			return out.ok == s.present && (!s.present || out.state == linState(s.rcvNxt)), s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(twInput), output.(twOutput)
		return fmt.Sprintf("op%d(k%d %d) -> ok=%v %d", in.op, in.key, in.rcvNxt, out.ok, out.state.RcvNxt)
	},
}

// linState is the State entered with rcvNxt v: every field derived from v,
// so a Lookup that mixed two entries' words would not match.
func linState(v uint32) State {
	return State{RcvNxt: v, SndNxt: v * 3, RcvWnd: v ^ 0xffff, TSOffset: v * 7, HasTimestamps: true,
		TSRecent: v + 11, TSRecentStamp: time.Hour}
}

// TestTableLinearizable records concurrent histories of Enter, Kill and
// Lookup on a few four-tuples of a one-shard table, while a filler
// goroutine enters and kills other tuples of the same shard so that the
// index grows and entries shift under the recorded lock-free Lookups, and
// checks them with porcupine. Writers yield in the middle of their changes,
// so that readers do meet half-made ones.
func TestTableLinearizable(t *testing.T) {
	midWrite = runtime.Gosched // let readers in while a change is half made
	defer func() { midWrite = nil }()
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for round := range 8 {
				checkTableLinearizable(t, uint64(round))
			}
		})
	}
}

func checkTableLinearizable(t *testing.T, seed uint64) {
	const clients, opsPerClient, keys = 4, 200, 5
	clk := new(ManualClock)
	clk.Set(time.Hour)
	tb, err := New(Options{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer tb.Close()
	var clock atomic.Int64
	var next atomic.Uint32
	histories := make([][]porcupine.Operation, clients)
	stop := make(chan struct{})
	fillerDone := make(chan struct{})
	go func() {
		defer close(fillerDone)
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			for i := range 200 {
				_ = tb.Enter(flow(1000+i, i%2 == 0), linState(1))
			}
			for i := range 200 {
				tb.Kill(flow(1000+i, i%2 == 0))
			}
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed*131 + uint64(c) | 1
			for range opsPerClient {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				in := twInput{op: twOp(x % 3), key: int(x >> 8 % keys)}
				tu := flow(in.key, in.key%2 == 1)
				call := clock.Add(1)
				var out twOutput
				switch in.op {
				case twEnter:
					in.rcvNxt = next.Add(1) + 100
					out.ok = tb.Enter(tu, linState(in.rcvNxt)) == nil
				case twKill:
					out.ok = tb.Kill(tu)
				case twLookup:
					out.state, out.ok = tb.Lookup(tu)
				}
				histories[c] = append(histories[c], porcupine.Operation{ClientId: c, Input: in, Call: call,
					Output: out, Return: clock.Add(1)})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-fillerDone
	var all []porcupine.Operation
	for _, h := range histories {
		all = append(all, h...)
	}
	res, info := porcupine.CheckOperationsVerbose(twModel, all, 10*time.Second)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		_ = porcupine.VisualizePath(twModel, info, path)
		t.Fatalf("history not linearizable (%v); see %s", res, path)
	}
}

// The model rejects a stale Lookup: the checker is not vacuous.
func TestTableLinearizabilityModelRejectsStaleRead(t *testing.T) {
	ops := []porcupine.Operation{
		{ClientId: 0, Input: twInput{op: twEnter, key: 1, rcvNxt: 5}, Output: twOutput{ok: true}, Call: 0, Return: 1},
		{ClientId: 0, Input: twInput{op: twKill, key: 1}, Output: twOutput{ok: true}, Call: 2, Return: 3},
		{ClientId: 1, Input: twInput{op: twLookup, key: 1}, Output: twOutput{ok: true, state: linState(5)}, Call: 4, Return: 5},
	}
	require.False(t, porcupine.CheckOperations(twModel, ops))
	ops[2].Output = twOutput{}
	require.True(t, porcupine.CheckOperations(twModel, ops))
}
