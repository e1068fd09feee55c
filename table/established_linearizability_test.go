package table_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/table"
)

// The porcupine model of one key of the table. Histories are partitioned
// by key, so each check is small.

type opKind uint8

const (
	opInsert opKind = iota
	opDelete
	opLookup
	opCompareAndDelete
	opCompareAndSwap
)

type kvInput struct {
	op     opKind
	key    int
	v, old uint64
}

type kvOutput struct {
	v      uint64
	ok     bool
	exists bool // Insert returned ErrExists
}

type kvState struct {
	present bool
	v       uint64
}

var kvModel = porcupine.Model{
	Init: func() any { return kvState{} },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) int { return in.(kvInput).key })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.op {
		case opInsert:
			if s.present {
				return out.exists, s
			}
			return !out.exists, kvState{present: true, v: in.v}
		case opDelete:
			if !s.present {
				return !out.ok, s
			}
			return out.ok && out.v == s.v, kvState{}
		case opLookup:
			return out.ok == s.present && (!s.present || out.v == s.v), s
		case opCompareAndDelete:
			if s.present && s.v == in.v {
				return out.ok, kvState{}
			}
			return !out.ok, s
		case opCompareAndSwap:
			if s.present && s.v == in.old {
				return out.ok, kvState{present: true, v: in.v}
			}
			return !out.ok, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		return fmt.Sprintf("op%d(k%d v%d old%d) -> v%d ok=%v exists=%v", in.op, in.key, in.v, in.old, out.v, out.ok, out.exists)
	},
}

// TestEstablishedLinearizable records concurrent histories of Insert,
// Delete, Lookup, CompareAndDelete and CompareAndSwap on a few keys, while
// a filler goroutine grows and shrinks the table so that the histories
// span resizes, and checks them with porcupine.
func TestEstablishedLinearizable(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			rounds := 10
			if testing.Short() {
				rounds = 4
			}
			for round := range rounds {
				checkLinearizable(t, int64(round))
			}
		})
	}
}

func checkLinearizable(t *testing.T, seed int64) {
	const clients, opsPerClient, keys = 4, 150, 6
	m := newTable[uint64](t, table.EstablishedOptions{})
	var clock atomic.Int64
	histories := make([][]porcupine.Operation, clients)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fillerDone := make(chan int)
	go func() { // resizes under the recorded operations
		n := 0
		for {
			select {
			case <-stop:
				fillerDone <- n
				return
			default:
			}
			for i := range 300 {
				m.Insert(key(1000+i), 1)
			}
			for i := range 300 {
				m.Delete(key(1000 + i))
			}
			n++
			runtime.Gosched() // at GOMAXPROCS=1, let the clients in between resizes
		}
	}()
	before := m.Stats().Resizes
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(seed*131+int64(c)) | 1
			// opsPerClient operations, and more (within a bound) until the
			// filler has resized the table at least once meanwhile.
			for i := 0; i < opsPerClient || m.Stats().Resizes == before && i < 20*opsPerClient; i++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				in := kvInput{op: opKind(x % 5), key: int(x >> 8 % keys), v: x >> 20 % 3, old: x >> 24 % 3}
				k := key(in.key)
				call := clock.Add(1)
				var out kvOutput
				switch in.op {
				case opInsert:
					out.exists = m.Insert(k, in.v) == table.ErrExists
				case opDelete:
					out.v, out.ok = m.Delete(k)
				case opLookup:
					out.v, out.ok = m.Lookup(k)
				case opCompareAndDelete:
					out.ok = m.CompareAndDelete(k, in.v)
				case opCompareAndSwap:
					out.ok = m.CompareAndSwap(k, in.old, in.v)
				}
				ret := clock.Add(1)
				histories[c] = append(histories[c], porcupine.Operation{
					ClientId: c, Input: in, Output: out, Call: call, Return: ret})
				if x&7 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	during := m.Stats().Resizes - before
	close(stop)
	<-fillerDone
	require.Positive(t, during, "no resize ran under the recorded history")
	var all []porcupine.Operation
	for _, h := range histories {
		all = append(all, h...)
	}
	res := porcupine.CheckOperationsTimeout(kvModel, all, 10*time.Second)
	require.Equal(t, porcupine.Ok, res, "history of round %d is not linearizable", seed)
}

// TestLinearizabilityCheckerCatchesBugs feeds the model a history no map
// can produce, so the check above is known to be able to fail.
func TestLinearizabilityCheckerCatchesBugs(t *testing.T) {
	bad := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{op: opInsert, key: 1, v: 1}, Output: kvOutput{}, Call: 1, Return: 2},
		{ClientId: 1, Input: kvInput{op: opLookup, key: 1}, Output: kvOutput{}, Call: 3, Return: 4}, // miss after insert
	}
	require.False(t, porcupine.CheckOperations(kvModel, bad), "a miss after a completed insert")
	lost := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{op: opInsert, key: 1, v: 1}, Output: kvOutput{}, Call: 1, Return: 2},
		{ClientId: 1, Input: kvInput{op: opInsert, key: 1, v: 2}, Output: kvOutput{}, Call: 3, Return: 4}, // duplicate SYN accepted twice
	}
	require.False(t, porcupine.CheckOperations(kvModel, lost), "two inserts of one tuple both accepted")
}

// The porcupine model of a whole table bounded by MaxEntries: whether an
// Insert may report the limit depends on every key, so this history is
// checked in one piece. Few keys and a limit below their number keep the
// table at its limit most of the time.

const limitKeys, limitMax = 4, 2

type limitInput struct {
	op  opKind // opInsert, opDelete or opLookup
	key int
	v   uint8
}

type limitOutput struct {
	v            uint8
	ok           bool
	exists, full bool // Insert returned ErrExists, ErrTableFull
}

// limitState holds each key's value plus one, 0 for absent.
type limitState [limitKeys]uint8

func (s limitState) entries() int {
	n := 0
	for _, v := range s {
		if v != 0 {
			n++
		}
	}
	return n
}

var limitModel = porcupine.Model{
	Init: func() any { return limitState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(limitState), input.(limitInput), output.(limitOutput)
		switch in.op {
		case opInsert:
			switch {
			case s[in.key] != 0:
				return out.exists, s
			case s.entries() >= limitMax:
				return out.full, s
			}
			if out.exists || out.full {
				return false, s
			}
			s[in.key] = in.v + 1
			return true, s
		case opDelete:
			if s[in.key] == 0 {
				return !out.ok, s
			}
			ok := out.ok && out.v == s[in.key]-1
			s[in.key] = 0
			return ok, s
		case opLookup:
			if s[in.key] == 0 {
				return !out.ok, s
			}
			return out.ok && out.v == s[in.key]-1, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(limitInput), output.(limitOutput)
		return fmt.Sprintf("op%d(k%d v%d) -> v%d ok=%v exists=%v full=%v", in.op, in.key, in.v, out.v, out.ok, out.exists, out.full)
	},
}

// TestEstablishedLimitLinearizable checks concurrent Insert, Delete and
// Lookup on a table with MaxEntries smaller than its key pool: an Insert
// of an absent key reports ErrTableFull exactly when the table holds
// MaxEntries entries at some moment of the call. With stall set, a test
// hook yields the writer's P in the two windows where an entry is counted
// but not visible (an Insert between its count and its store) or visible
// no more but still counted (a Delete between its removal and its count),
// so that the other clients run inside them.
func TestEstablishedLimitLinearizable(t *testing.T) {
	for _, stall := range []bool{false, true} {
		t.Run(fmt.Sprintf("stall=%v", stall), func(t *testing.T) {
			porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
				rounds := 20
				if testing.Short() {
					rounds = 6
				}
				for round := range rounds {
					checkLimitLinearizable(t, uint64(round), stall)
				}
			})
		})
	}
}

func checkLimitLinearizable(t *testing.T, seed uint64, stall bool) {
	const clients, opsPerClient = 4, 60
	m := newTable[uint8](t, table.EstablishedOptions{MaxEntries: limitMax})
	if stall {
		m.SetTestHook(func(p table.HookPoint) {
			if p != table.HookLimitWait {
				runtime.Gosched()
			}
		})
	}
	rec := porctest.NewRecorder(clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := porctest.NewRand(seed*8 + uint64(c))
			for range opsPerClient {
				in := limitInput{op: []opKind{opInsert, opInsert, opDelete, opLookup}[r.IntN(4)], key: r.IntN(limitKeys), v: uint8(r.IntN(3))}
				k := key(in.key)
				call := rec.Call()
				var out limitOutput
				switch in.op {
				case opInsert:
					err := m.Insert(k, in.v)
					out.exists, out.full = err == table.ErrExists, err == table.ErrTableFull
					assert.True(t, err == nil || out.exists || out.full, "Insert: %v", err)
				case opDelete:
					out.v, out.ok = m.Delete(k)
				case opLookup:
					out.v, out.ok = m.Lookup(k)
				}
				rec.Return(c, call, in, out)
			}
		}()
	}
	wg.Wait()
	porctest.Check(t, limitModel, rec.History(), 10*time.Second)
	require.LessOrEqual(t, m.Len(), limitMax)
}
