//go:build race

package table_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// raceEnabled shrinks the largest tests under the race detector, which
// makes every memory access several times slower.
const raceEnabled = true

// raceConn is a socket a writer fills with plain stores before it
// publishes it.
type raceConn struct {
	id    int
	state int
}

// TestEstablishedPublishesForTheRaceDetector is checked by the race
// detector itself: writers fill each socket with plain stores and then
// publish it (Insert, InsertKind, CompareAndSwapKind, CompareAndSwap),
// and readers that find it (Lookup, LookupKind, LookupHashedKind,
// LookupBatchHashed, All) read its fields with plain loads. Unless every
// publication "synchronizes before" the lookups that return it, the race
// detector reports those loads.
func TestEstablishedPublishesForTheRaceDetector(t *testing.T) {
	const keys, ops = 32, 3000
	m := newTable[*raceConn](t, table.EstablishedOptions{MaxEntries: keys})
	h := m.Hasher()
	var stop atomic.Bool
	var wg, writers sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		writers.Add(1)
		go func() {
			defer wg.Done()
			defer writers.Done()
			r := porctest.NewRand(uint64(w))
			for range ops {
				i := r.IntN(keys)
				k := key(i)
				fresh := &raceConn{id: i, state: r.IntN(100)}
				cur, kind, ok := m.LookupKind(k)
				switch {
				case !ok:
					_ = m.InsertKind(k, fresh, table.KindRequest)
				case r.IntN(8) == 0:
					m.CompareAndDelete(k, cur)
				case kind == table.KindRequest:
					m.CompareAndSwapKind(k, cur, fresh, table.KindConn)
				default:
					m.CompareAndSwap(k, cur, fresh)
				}
			}
		}()
	}
	check := func(c *raceConn, i int) bool {
		return assert.Equal(t, i, c.id) && assert.Less(t, c.state, 100)
	}
	for rd := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := porctest.NewRand(uint64(10 + rd))
			batch, hashes := make([]tuple.Tuple, 8), make([]uint64, 8)
			vals, kinds, found := make([]*raceConn, 8), make([]table.Kind, 8), make([]bool, 8)
			for n := 0; !stop.Load(); n++ {
				i := r.IntN(keys)
				if c, ok := m.Lookup(key(i)); ok && !check(c, i) {
					return
				}
				if c, _, ok := m.LookupHashedKind(h.Hash(key(i)), key(i)); ok && !check(c, i) {
					return
				}
				for j := range batch {
					batch[j] = key((i + j) % keys)
					hashes[j] = h.Hash(batch[j])
				}
				m.LookupBatchHashed(hashes, batch, vals, kinds, found)
				for j := range batch {
					if found[j] && !check(vals[j], (i+j)%keys) {
						return
					}
				}
				if n%16 == 0 {
					for _, c := range m.All() {
						_ = c.state
					}
					runtime.Gosched()
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	wg.Wait()
}
