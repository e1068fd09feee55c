//go:build !race

package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// UDP lookups (the datagram path, LookupValue) allocate nothing: a connected socket, an exact address, a
// wildcard, a reuseport group's pick, and a miss.
func TestUDPLookupAllocatesNothing(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
	require.NoError(t, err)
	for range 3 {
		_, err := p.Bind(udpBind("0.0.0.0", 443, false, true, 1), 0)
		require.NoError(t, err)
	}
	_, err = p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	_, err = p.Bind(udpBind("0.0.0.0", 53, true, false, 0), 0)
	require.NoError(t, err)
	c, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	require.NoError(t, c.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.1:5000")))
	for _, f := range []tuple.Tuple{
		tuple.MustNew("192.0.2.1:53", "198.51.100.1:5000"),
		tuple.MustNew("192.0.2.1:53", "198.51.100.2:5000"),
		tuple.MustNew("192.0.2.9:53", "198.51.100.2:5000"),
		tuple.MustNew("192.0.2.1:443", "198.51.100.2:5000"),
		tuple.MustNew("192.0.2.1:444", "198.51.100.2:5000"),
	} {
		require.Zero(t, testing.AllocsPerRun(200, func() { p.LookupValue(f, 0) }), "%v", f)
	}
}
