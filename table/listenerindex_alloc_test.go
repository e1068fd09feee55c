//go:build !race

package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func TestListenerIndexLookupAllocatesNothing(t *testing.T) {
	ports, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
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
		idx.LookupHashed(12345, tuple.MustEndpoint("192.0.2.1:80"), src, 0)
	}))
}
