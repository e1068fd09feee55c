package table_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/table"
)

// The porcupine model of one key of the table, its value and its kind.
// Histories are partitioned by key, so each check is small.

type opKind uint8

const (
	opInsert opKind = iota // Insert, or InsertKind with kind
	opDelete
	opLookup
	opCompareAndDelete
	opCompareAndSwap
	opLookupKind
	opCompareAndSwapKind // to kind
	numOps
)

type kvInput struct {
	op     opKind
	key    int
	v, old uint64
	kind   table.Kind
}

type kvOutput struct {
	v      uint64
	kind   table.Kind
	ok     bool
	exists bool // Insert returned ErrExists
}

type kvState struct {
	present bool
	v       uint64
	kind    table.Kind
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
			return !out.exists, kvState{present: true, v: in.v, kind: in.kind}
		case opDelete:
			if !s.present {
				return !out.ok, s
			}
			return out.ok && out.v == s.v, kvState{}
		case opLookup:
			return out.ok == s.present && (!s.present || out.v == s.v), s
		case opLookupKind:
			return out.ok == s.present && (!s.present || out.v == s.v && out.kind == s.kind), s
		case opCompareAndDelete:
			if s.present && s.v == in.v {
				return out.ok, kvState{}
			}
			return !out.ok, s
		case opCompareAndSwap, opCompareAndSwapKind:
			if s.present && s.v == in.old {
				next := kvState{present: true, v: in.v, kind: s.kind}
				if in.op == opCompareAndSwapKind {
					next.kind = in.kind
				}
				return out.ok, next
			}
			return !out.ok, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		return fmt.Sprintf("op%d(k%d v%d old%d kind%d) -> v%d kind%d ok=%v exists=%v",
			in.op, in.key, in.v, in.old, in.kind, out.v, out.kind, out.ok, out.exists)
	},
}

// TestEstablishedLinearizable records concurrent histories of Insert,
// Delete, Lookup, CompareAndDelete and CompareAndSwap, and of their Kind
// and Hashed forms, on a few keys, while a filler goroutine grows and
// shrinks the table so that the histories span resizes, and checks them
// with porcupine. With stall set, a test hook yields the P of a
// CompareAndSwapKind between its value store and its kind store, so that
// LookupKind calls run inside the change.
func TestEstablishedLinearizable(t *testing.T) {
	for _, stall := range []bool{false, true} {
		t.Run(fmt.Sprintf("stall=%v", stall), func(t *testing.T) {
			porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
				rounds := 6
				if testing.Short() {
					rounds = 2
				}
				for round := range rounds {
					checkLinearizable(t, uint64(round), stall)
				}
			})
		})
	}
}

func checkLinearizable(t *testing.T, seed uint64, stall bool) {
	const clients, opsPerClient, keys = 4, 150, 6
	m := newTable[uint64](t, table.EstablishedOptions{})
	if stall {
		m.SetTestHook(func(p table.HookPoint) {
			if p == table.HookKindChanging {
				runtime.Gosched()
			}
		})
	}
	rec := porctest.NewRecorder(clients)
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
	h := m.Hasher()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := porctest.NewRand(seed*16 + uint64(c))
			// opsPerClient operations, and more (within a bound) until the
			// filler has resized the table at least once meanwhile.
			for i := 0; i < opsPerClient || m.Stats().Resizes == before && i < 20*opsPerClient; i++ {
				in := kvInput{op: opKind(r.IntN(int(numOps))), key: r.IntN(keys),
					v: uint64(r.IntN(3)), old: uint64(r.IntN(3)), kind: table.Kind(r.IntN(2))}
				hashed := r.IntN(2) == 0 // the Hashed form of the call
				k := key(in.key)
				hk := h.Hash(k)
				call := rec.Call()
				var out kvOutput
				switch in.op {
				case opInsert:
					var err error
					switch {
					case in.kind == table.KindConn && hashed:
						err = m.InsertHashed(hk, k, in.v)
					case in.kind == table.KindConn:
						err = m.Insert(k, in.v)
					case hashed:
						err = m.InsertHashedKind(hk, k, in.v, in.kind)
					default:
						err = m.InsertKind(k, in.v, in.kind)
					}
					out.exists = err == table.ErrExists
					assert.True(t, err == nil || out.exists, "Insert: %v", err)
				case opDelete:
					if hashed {
						out.v, out.ok = m.DeleteHashed(hk, k)
					} else {
						out.v, out.ok = m.Delete(k)
					}
				case opLookup:
					if hashed {
						out.v, out.ok = m.LookupHashed(hk, k)
					} else {
						out.v, out.ok = m.Lookup(k)
					}
				case opLookupKind:
					if hashed {
						out.v, out.kind, out.ok = m.LookupHashedKind(hk, k)
					} else {
						out.v, out.kind, out.ok = m.LookupKind(k)
					}
				case opCompareAndDelete:
					if hashed {
						out.ok = m.CompareAndDeleteHashed(hk, k, in.v)
					} else {
						out.ok = m.CompareAndDelete(k, in.v)
					}
				case opCompareAndSwap:
					if hashed {
						out.ok = m.CompareAndSwapHashed(hk, k, in.old, in.v)
					} else {
						out.ok = m.CompareAndSwap(k, in.old, in.v)
					}
				case opCompareAndSwapKind:
					if hashed {
						out.ok = m.CompareAndSwapHashedKind(hk, k, in.old, in.v, in.kind)
					} else {
						out.ok = m.CompareAndSwapKind(k, in.old, in.v, in.kind)
					}
				}
				rec.Return(c, call, in, out)
				if r.IntN(8) == 0 {
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
	porctest.Check(t, kvModel, rec.History(), 10*time.Second)
}

// TestLinearizabilityCheckerCatchesBugs feeds the models histories no
// correct table can produce, so the checks above are known to be able to
// fail.
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
	// A request entry becoming a connection, read half-changed: the new
	// value with the old kind, by a LookupKind overlapping the swap.
	torn := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{op: opInsert, key: 1, v: 1, kind: table.KindRequest}, Output: kvOutput{}, Call: 1, Return: 2},
		{ClientId: 0, Input: kvInput{op: opCompareAndSwapKind, key: 1, old: 1, v: 2, kind: table.KindConn}, Output: kvOutput{ok: true}, Call: 3, Return: 6},
		{ClientId: 1, Input: kvInput{op: opLookupKind, key: 1}, Output: kvOutput{ok: true, v: 2, kind: table.KindRequest}, Call: 4, Return: 5},
	}
	require.False(t, porcupine.CheckOperations(kvModel, torn), "a value and a kind from either side of a swap")
	// Refused at the limit while a Lookup had just seen the table empty.
	refused := []porcupine.Operation{
		{ClientId: 0, Input: limitInput{op: opInsert, key: 0}, Output: limitOutput{}, Call: 1, Return: 2},
		{ClientId: 0, Input: limitInput{op: opInsert, key: 1}, Output: limitOutput{}, Call: 3, Return: 4},
		{ClientId: 1, Input: limitInput{op: opDelete, key: 1}, Output: limitOutput{ok: true}, Call: 5, Return: 10},
		{ClientId: 2, Input: limitInput{op: opLookup, key: 1}, Output: limitOutput{}, Call: 6, Return: 7},
		{ClientId: 2, Input: limitInput{op: opInsert, key: 2}, Output: limitOutput{full: true}, Call: 8, Return: 9},
	}
	require.False(t, porcupine.CheckOperations(limitModel, refused), "ErrTableFull below the limit")
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
