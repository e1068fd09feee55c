//go:build !race

package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func TestEstablishedLookupAllocatesNothing(t *testing.T) {
	m := newTable[*sock](t, table.EstablishedOptions{})
	s := &sock{}
	for i := range 1000 {
		require.NoError(t, m.InsertKind(key(i), s, table.Kind(i%2)))
	}
	hit, miss := key(7), key(5000)
	h := m.Hasher()
	keys := []tuple.Tuple{hit, miss, key(8), key(9)}
	hashes := []uint64{h.Hash(hit), h.Hash(miss), h.Hash(key(8)), h.Hash(key(9))}
	vals, kinds, found := make([]*sock, 4), make([]table.Kind, 4), make([]bool, 4)
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		m.Lookup(hit)
		m.Lookup(miss)
		m.LookupHashed(hashes[0], hit)
		m.LookupKind(hit)
		m.LookupHashedKind(hashes[1], miss)
		m.LookupBatch(keys, vals, found)
		m.LookupBatchHashed(hashes, keys, vals, nil, found)
		m.LookupBatchHashed(hashes, keys, vals, kinds, found)
	}))
}

func TestEstablishedWritesAllocateNothingInSteadyState(t *testing.T) {
	for _, name := range []string{"pointer", "word", "bounded", "hashed"} {
		t.Run(name, func(t *testing.T) {
			opts := table.EstablishedOptions{Capacity: 2000}
			if name == "bounded" {
				opts.MaxEntries = 1000
			}
			m := newTable[uint64](t, opts)
			ms := newTable[*sock](t, opts)
			s1, s2 := &sock{1}, &sock{2}
			for i := range 1000 {
				require.NoError(t, m.Insert(key(i), uint64(i)))
				require.NoError(t, ms.Insert(key(i), s1))
			}
			h := m.Hasher()
			i := 1000
			require.Zero(t, testing.AllocsPerRun(2000, func() {
				// Churn at constant size: insert one, delete the oldest.
				switch name {
				case "pointer":
					_ = ms.Insert(key(i), s1)
					ms.CompareAndSwap(key(i), s1, s2)
					ms.CompareAndSwapKind(key(i), s2, s1, table.KindRequest)
					ms.CompareAndDelete(key(i-1000), s1)
					ms.Delete(key(i - 1000))
				case "word":
					_ = m.InsertKind(key(i), uint64(i), table.KindRequest)
					m.CompareAndSwap(key(i), uint64(i), 7)
					m.CompareAndSwapKind(key(i), 7, uint64(i), table.KindConn)
					m.CompareAndDelete(key(i-1000), uint64(i-1000))
					m.Delete(key(i - 1000))
				case "bounded": // at the limit: one refusal, one delete, one insert
					if err := m.Insert(key(i), uint64(i)); err != table.ErrTableFull {
						panic(err)
					}
					m.Delete(key(i - 1000))
					_ = m.Insert(key(i), uint64(i))
				case "hashed":
					hk, hold := h.Hash(key(i)), h.Hash(key(i-1000))
					_ = m.InsertHashed(hk, key(i), uint64(i))
					_ = m.InsertHashedKind(hk, key(i), uint64(i), table.KindRequest) // ErrExists
					m.CompareAndSwapHashed(hk, key(i), uint64(i), 7)
					m.CompareAndSwapHashedKind(hk, key(i), 7, uint64(i), table.KindRequest)
					m.CompareAndDeleteHashed(hold, key(i-1000), 1)
					m.DeleteHashed(hold, key(i-1000))
				}
				i++
			}))
		})
	}
}
