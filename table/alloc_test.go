//go:build !race

package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func TestLookupAllocatesNothing(t *testing.T) {
	m := newTable[*sock](t, table.EstablishedOptions{})
	s := &sock{}
	for i := range 1000 {
		require.NoError(t, m.Insert(key(i), s))
	}
	hit, miss := key(7), key(5000)
	h := tuple.NewHasher()
	keys := []tuple.Tuple{hit, miss, key(8), key(9)}
	vals, found := make([]*sock, 4), make([]bool, 4)
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		m.Lookup(hit)
		m.Lookup(miss)
		m.LookupHashed(h.Hash(hit), hit)
		m.LookupBatch(keys, vals, found)
	}))
}

func TestWritesAllocateNothingInSteadyState(t *testing.T) {
	for _, name := range []string{"pointer", "word"} {
		t.Run(name, func(t *testing.T) {
			m := newTable[uint64](t, table.EstablishedOptions{Capacity: 2000})
			ms := newTable[*sock](t, table.EstablishedOptions{Capacity: 2000})
			s1, s2 := &sock{1}, &sock{2}
			for i := range 1000 {
				require.NoError(t, m.Insert(key(i), uint64(i)))
				require.NoError(t, ms.Insert(key(i), s1))
			}
			i := 1000
			require.Zero(t, testing.AllocsPerRun(2000, func() {
				// Churn at constant size: insert one, delete the oldest.
				if name == "pointer" {
					_ = ms.Insert(key(i), s1)
					ms.CompareAndSwap(key(i), s1, s2)
					ms.CompareAndDelete(key(i-1000), s1)
					ms.Delete(key(i - 1000))
				} else {
					_ = m.Insert(key(i), uint64(i))
					m.CompareAndSwap(key(i), uint64(i), 7)
					m.CompareAndDelete(key(i-1000), uint64(i-1000))
					m.Delete(key(i - 1000))
				}
				i++
			}))
		})
	}
}

func TestListenersLookupAllocatesNothing(t *testing.T) {
	ports, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	idx, err := table.NewListeners[int](ports, table.ListenersOptions{})
	require.NoError(t, err)
	for i, req := range []table.BindRequest{
		{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true},
		{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true},
		{Family: 6, Addr: tuple.MustAddr("2001:db8::1"), Port: 80},
	} {
		b, err := ports.Bind(req)
		require.NoError(t, err)
		_, err = idx.Listen(b, i)
		require.NoError(t, err)
	}
	src := tuple.MustEndpoint("10.0.0.1:5000")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		idx.Lookup(tuple.MustEndpoint("192.0.2.1:80"), src, 0)
		idx.Lookup(tuple.MustEndpoint("[2001:db8::1]:80"), src, 0)
		idx.Lookup(tuple.MustEndpoint("192.0.2.1:81"), src, 0)
	}))
}
