package timewait

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/tuple"
)

// The porcupine model of one four-tuple of a Table: absent, or present
// with the RcvNxt it was entered with and its owner (each Enter uses a
// fresh RcvNxt and a fresh owner, so a stale or torn Lookup shows, and so
// does an owner handed out twice or by the wrong call).

type twOp uint8

const (
	twEnter twOp = iota
	twKill
	twLookup
	twTakeOver // with an explicit bind: every entry here may be taken over
	twReplace  // install fails when input.fail
	twRST      // an RST at input.rcvNxt: in window only if that is the entry's
	twOps
)

var twOpNames = [twOps]string{"enter", "kill", "lookup", "takeover", "replace", "rst"}

type twInput struct {
	op     twOp
	key    int
	rcvNxt uint32 // Enter: the entry's; RST: the segment's sequence number
	owner  int    // Enter
	fail   bool   // Replace: install returns an error
}

type twOutput struct {
	ok    bool  // Enter: inserted; the others: found (Replace: found and removed)
	state State // Lookup: the state found
	owner int   // Kill, TakeOver, Replace, RST: the owner handed back
	fate  Fate  // RST
}

type twLinState struct {
	present bool
	rcvNxt  uint32
	owner   int
}

var twModel = porcupine.Model{
	Init: func() any { return twLinState{} },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) int { return in.(twInput).key })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(twLinState), input.(twInput), output.(twOutput)
		gone := twLinState{}
		handedOut := out.ok == s.present && out.owner == s.owner // the zero owner when absent
		switch in.op {
		case twEnter:
			if s.present {
				return !out.ok, s
			}
			return out.ok, twLinState{present: true, rcvNxt: in.rcvNxt, owner: in.owner}
		case twKill, twTakeOver:
			return handedOut, gone
		case twLookup:
			return out.ok == s.present && (!s.present || out.state == linState(s.rcvNxt)), s
		case twReplace:
			if in.fail {
				return !out.ok && out.owner == 0, s
			}
			return handedOut, gone
		case twRST:
			if s.present && s.rcvNxt == in.rcvNxt {
				return out.ok && out.fate == FateRemoved && out.owner == s.owner, gone
			}
			return out.ok == s.present && out.fate == FateKept && out.owner == 0, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(twInput), output.(twOutput)
		return fmt.Sprintf("%s(k%d %d o%d fail=%v) -> ok=%v %d o%d %v", twOpNames[in.op], in.key, in.rcvNxt,
			in.owner, in.fail, out.ok, out.state.RcvNxt, out.owner, out.fate)
	},
}

// linState is the State entered with rcvNxt v: every field derived from v,
// so a Lookup that mixed two entries' words would not match.
func linState(v uint32) State {
	return State{RcvNxt: v, SndNxt: v * 3, RcvWnd: v ^ 0xffff, TSOffset: v * 7, HasTimestamps: true,
		TSRecent: v + 11, TSRecentStamp: time.Hour}
}

var errInstall = errors.New("install refused")

// TestTableLinearizable records concurrent histories of Enter, Kill,
// Lookup, TakeOver, Replace and in-window RSTs on a few four-tuples of a
// one-shard table, while a filler goroutine enters and kills other tuples
// of the same shard so that the index grows and entries shift under the
// recorded lock-free Lookups, and checks them with porcupine, owners
// included. Writers yield in the middle of their changes, so that readers
// do meet half-made ones.
func TestTableLinearizable(t *testing.T) {
	midWrite = runtime.Gosched // let readers in while a change is half made
	defer func() { midWrite = nil }()
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 8 {
			checkTableLinearizable(t, uint64(round))
		}
	})
}

func checkTableLinearizable(t *testing.T, seed uint64) {
	const clients, opsPerClient, keys = 4, 200, 5
	clk := new(ManualClock)
	clk.Set(time.Hour)
	tb, err := NewTable(TableOptions[int]{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer tb.Close()
	var next atomic.Uint32
	var lastEntered [keys]atomic.Uint32 // a hint for the RSTs to aim with
	rec := porctest.NewRecorder(clients)
	stop := make(chan struct{})
	fillerDone := make(chan struct{})
	go func() {
		defer close(fillerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range 200 {
				_ = tb.Enter(flow(1000+i, i%2 == 0), linState(1), -1)
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
			rnd := porctest.NewRand(seed*131 + uint64(c))
			for range opsPerClient {
				in := twInput{op: twOp(rnd.IntN(int(twOps))), key: rnd.IntN(keys)}
				tu := flow(in.key, in.key%2 == 1)
				switch in.op {
				case twEnter:
					in.rcvNxt = next.Add(1) + 100
					in.owner = int(in.rcvNxt)
				case twReplace:
					in.fail = rnd.IntN(3) == 0
				case twRST:
					in.rcvNxt = lastEntered[in.key].Load() + uint32(rnd.IntN(2)) // in window or just past it
				}
				call := rec.Call()
				var out twOutput
				switch in.op {
				case twEnter:
					out.ok = tb.Enter(tu, linState(in.rcvNxt), in.owner) == nil
					if out.ok {
						lastEntered[in.key].Store(in.rcvNxt)
					}
				case twKill:
					out.owner, out.ok = tb.Kill(tu)
				case twLookup:
					out.state, out.ok = tb.Lookup(tu)
				case twTakeOver:
					_, out.owner, out.ok = tb.TakeOver(tu, true)
				case twReplace:
					var err error
					out.owner, out.ok, err = tb.Replace(tu, func() error {
						if in.fail {
							return errInstall
						}
						return nil
					})
					if in.fail && err != errInstall || !in.fail && err != nil {
						t.Errorf("Replace: %v, fail=%v", err, in.fail)
					}
				case twRST:
					s := tuple.Segment{Tuple: tu, Proto: tuple.ProtoTCP, Flags: tuple.RST, Seq: in.rcvNxt}
					var r Reply
					r, out.owner, out.ok = tb.Process(tu, &s)
					out.fate = r.Fate
				}
				rec.Return(c, call, in, out)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-fillerDone
	porctest.Check(t, twModel, rec.History(), 10*time.Second)
}

// The model rejects a stale Lookup and an owner handed out twice: the
// checker is not vacuous.
func TestTableLinearizabilityModelRejects(t *testing.T) {
	enter := porcupine.Operation{ClientId: 0, Input: twInput{op: twEnter, key: 1, rcvNxt: 5, owner: 5},
		Output: twOutput{ok: true}, Call: 0, Return: 1}
	kill := porcupine.Operation{ClientId: 0, Input: twInput{op: twKill, key: 1}, Output: twOutput{ok: true, owner: 5},
		Call: 2, Return: 3}
	stale := porcupine.Operation{ClientId: 1, Input: twInput{op: twLookup, key: 1},
		Output: twOutput{ok: true, state: linState(5)}, Call: 4, Return: 5}
	require.False(t, porcupine.CheckOperations(twModel, []porcupine.Operation{enter, kill, stale}))
	stale.Output = twOutput{}
	require.True(t, porcupine.CheckOperations(twModel, []porcupine.Operation{enter, kill, stale}))
	twice := porcupine.Operation{ClientId: 1, Input: twInput{op: twReplace, key: 1},
		Output: twOutput{ok: true, owner: 5}, Call: 4, Return: 5}
	require.False(t, porcupine.CheckOperations(twModel, []porcupine.Operation{enter, kill, twice}))
	wrong := kill
	wrong.Output = twOutput{ok: true, owner: 6}
	require.False(t, porcupine.CheckOperations(twModel, []porcupine.Operation{enter, wrong}))
}
