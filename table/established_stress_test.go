package table_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// TestLookupNeverMissesAStableEntry is the gVisor #5850 scenario: a lookup
// that races deletes, inserts and resizes (moves) must never miss an
// entry that is present for the whole lookup, nor return a wrong value.
// Stable keys are never deleted; churn keys are inserted and deleted at
// full speed, growing and shrinking the table over and over.
func TestLookupNeverMissesAStableEntry(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		stable, churn, rounds := 200, 3000, 4
		if testing.Short() {
			churn, rounds = 1500, 2
		}
		m := newTable[uint64](t, table.EstablishedOptions{})
		for i := range stable {
			require.NoError(t, m.Insert(key(i), uint64(i)))
		}
		var stop atomic.Bool
		var lookups atomic.Int64
		var wg sync.WaitGroup
		for r := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := r; !stop.Load(); n++ {
					i := n % stable
					v, ok := m.Lookup(key(i))
					if !assert.True(t, ok, "stable key %d missed during churn", i) ||
						!assert.Equal(t, uint64(i), v) {
						stop.Store(true)
						return
					}
					// Churn keys: absent, or present with their own value.
					j := stable + n%churn
					if v, ok := m.Lookup(key(j)); ok && !assert.Equal(t, uint64(j), v) {
						stop.Store(true)
						return
					}
					lookups.Add(1)
					if n%64 == 0 {
						runtime.Gosched() // share one P with the writer
					}
				}
			}()
		}
		before := m.Stats().Resizes
		for range rounds {
			for j := stable; j < stable+churn && !stop.Load(); j++ {
				require.NoError(t, m.Insert(key(j), uint64(j)))
				if j%64 == 0 {
					runtime.Gosched() // at GOMAXPROCS=1, let the readers in
				}
			}
			for j := stable; j < stable+churn && !stop.Load(); j++ {
				_, ok := m.Delete(key(j))
				require.True(t, ok)
				if j%64 == 0 {
					runtime.Gosched()
				}
			}
		}
		stop.Store(true)
		wg.Wait()
		require.Greater(t, m.Stats().Resizes-before, uint64(rounds), "the table must have moved entries")
		require.Positive(t, lookups.Load())
	})
}

// TestConcurrentWritersExactlyOnce has writers racing on a shared key pool
// with inserts, deletes, compare-and-deletes and swaps. Every successful
// insert and delete is counted per key; at the end each key's insert count
// minus its delete count is exactly whether it is present, and the values
// agree. Nothing is lost or counted twice, through resizes.
func TestConcurrentWritersExactlyOnce(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		const keys, writers = 512, 4
		ops := 20000
		if testing.Short() {
			ops = 5000
		}
		m := newTable[uint64](t, table.EstablishedOptions{})
		var inserted, deleted [keys]atomic.Int64
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := porctest.NewRand(uint64(w))
				for range ops {
					x := r.Next()
					i := int(x % keys)
					val := uint64(i)<<8 | x>>60 // the key's id, plus noise the swaps change
					switch x >> 56 % 4 {
					case 0, 1:
						if err := m.Insert(key(i), val); err == nil {
							inserted[i].Add(1)
						} else if !assert.ErrorIs(t, err, table.ErrExists) {
							return
						}
					case 2:
						if v, ok := m.Delete(key(i)); ok {
							assert.Equal(t, uint64(i), v>>8, "deleted value belongs to another key")
							deleted[i].Add(1)
						}
					case 3:
						if v, ok := m.Lookup(key(i)); ok {
							assert.Equal(t, uint64(i), v>>8)
							if x&1 == 0 {
								m.CompareAndSwap(key(i), v, uint64(i)<<8|x&0xff)
							} else if m.CompareAndDelete(key(i), v) {
								deleted[i].Add(1)
							}
						}
					}
				}
			}()
		}
		wg.Wait()
		present := 0
		for i := range keys {
			v, ok := m.Lookup(key(i))
			balance := inserted[i].Load() - deleted[i].Load()
			require.Contains(t, []int64{0, 1}, balance, "key %d", i)
			require.Equal(t, balance == 1, ok, "key %d: %d inserts, %d deletes", i, inserted[i].Load(), deleted[i].Load())
			if ok {
				require.Equal(t, uint64(i), v>>8)
				present++
			}
		}
		require.Equal(t, present, m.Len())
	})
}

// TestCloseDuringWrites closes the table while writers and readers run:
// every write either completes before Close or fails with ErrClosed.
func TestCloseDuringWrites(t *testing.T) {
	m := newTable[uint64](t, table.EstablishedOptions{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	start := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := w * 100000; ; i++ {
				err := m.Insert(key(i), uint64(i))
				if err == table.ErrClosed {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				ok.Add(1)
				m.Lookup(key(i))
			}
		}()
	}
	close(start)
	for ok.Load() < 2000 {
		runtime.Gosched()
	}
	require.NoError(t, m.Close())
	wg.Wait()
	require.Zero(t, m.Len())
}

// TestKindChangesAreNeverTorn has writers flip entries between a request
// (an even value, KindRequest) and a connection (the next odd value,
// KindConn) with CompareAndSwapKind, delete and re-insert them, while
// readers check every pair they see through LookupKind, LookupHashedKind
// and LookupBatchHashed: the value's parity must match its kind. A filler
// grows and shrinks the table meanwhile, so pairs are also read from
// tables being rehashed.
func TestKindChangesAreNeverTorn(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		const keys, writers, readers = 64, 2, 2
		ops := 20000
		if testing.Short() || raceEnabled {
			ops = 4000
		}
		m := newTable[uint64](t, table.EstablishedOptions{})
		h := m.Hasher()
		for i := range keys {
			require.NoError(t, m.InsertKind(key(i), uint64(i)<<8, table.KindRequest))
		}
		// consistent reports whether v and kind belong together.
		consistent := func(v uint64, kind table.Kind) bool {
			return kind == table.KindRequest && v&1 == 0 || kind == table.KindConn && v&1 == 1
		}
		var stop atomic.Bool
		var wg, writersWG sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			writersWG.Add(1)
			go func() {
				defer wg.Done()
				defer writersWG.Done()
				r := porctest.NewRand(uint64(w))
				for range ops {
					i := r.IntN(keys)
					k := key(i)
					v, kind, ok := m.LookupKind(k)
					switch {
					case !ok:
						_ = m.InsertKind(k, uint64(i)<<8, table.KindRequest)
					case r.IntN(16) == 0:
						m.CompareAndDelete(k, v)
					case kind == table.KindRequest:
						m.CompareAndSwapHashedKind(h.Hash(k), k, v, v|1, table.KindConn) // the final ACK
					default:
						m.CompareAndSwapKind(k, v, uint64(i)<<8|(v+1)&0xfe, table.KindRequest) // back, with a new value
					}
				}
			}()
		}
		for rd := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := porctest.NewRand(uint64(100 + rd))
				batch, hashes := make([]tuple.Tuple, 16), make([]uint64, 16)
				vals, kinds, found := make([]uint64, 16), make([]table.Kind, 16), make([]bool, 16)
				for n := 0; !stop.Load(); n++ {
					i := r.IntN(keys)
					var v uint64
					var kind table.Kind
					var ok bool
					if n%2 == 0 {
						v, kind, ok = m.LookupKind(key(i))
					} else {
						v, kind, ok = m.LookupHashedKind(h.Hash(key(i)), key(i))
					}
					if ok && !assert.True(t, consistent(v, kind), "key %d: value %#x with kind %d", i, v, kind) {
						return
					}
					for j := range batch {
						batch[j] = key((i + j) % keys)
						hashes[j] = h.Hash(batch[j])
					}
					m.LookupBatchHashed(hashes, batch, vals, kinds, found)
					for j := range batch {
						if found[j] && !assert.True(t, consistent(vals[j], kinds[j]), "batch key %d: value %#x with kind %d", (i+j)%keys, vals[j], kinds[j]) {
							return
						}
					}
					if n%64 == 0 {
						runtime.Gosched()
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // resizes under the readers
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				for i := range 500 {
					m.Insert(key(1000+i), 1)
				}
				for i := range 500 {
					m.Delete(key(1000 + i))
				}
				runtime.Gosched()
			}
		}()
		writersWG.Wait()
		stop.Store(true)
		wg.Wait()
		for i := range keys {
			if v, kind, ok := m.LookupKind(key(i)); ok {
				require.True(t, consistent(v, kind), "key %d", i)
				require.Equal(t, uint64(i), v>>8, "key %d holds another key's value", i)
			}
		}
	})
}
