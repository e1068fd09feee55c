package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func connectReq(dst string) table.ConnectRequest {
	return table.ConnectRequest{Family: 4, Local: tuple.MustAddr("127.0.0.1"), Remote: tuple.MustEndpoint(dst)}
}

// ConnectAny needs only four-tuple uniqueness: connections to different
// destinations share ports; to one destination, each takes its own, until
// the range runs out (ErrAddrNotAvail).
func TestConnectAnyFourTupleUniqueness(t *testing.T) {
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40001})
	for i := range 6 {
		b, err := p.ConnectAny(connectReq("192.0.2.1:" + []string{"80", "81", "82", "83", "84", "85"}[i]))
		require.NoError(t, err, "destination %d", i)
		require.Equal(t, table.StateConnected, b.State())
	}
	a, err := p.ConnectAny(connectReq("192.0.2.9:80"))
	require.NoError(t, err)
	b, err := p.ConnectAny(connectReq("192.0.2.9:80"))
	require.NoError(t, err)
	require.NotEqual(t, a.Port(), b.Port())
	_, err = p.ConnectAny(connectReq("192.0.2.9:80"))
	require.ErrorIs(t, err, table.ErrAddrNotAvail)
	require.NoError(t, p.Release(a))
	c, err := p.ConnectAny(connectReq("192.0.2.9:80"))
	require.NoError(t, err)
	require.Equal(t, a.Port(), c.Port(), "the released port serves again")
}

// Ports taken by bind() are never picked by connect(), even for another
// address; the range's low parity (even here) comes first.
func TestConnectAnySkipsBoundPortsAndPrefersEven(t *testing.T) {
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40003})
	_, err := p.Bind(req4("127.0.0.2", 40000))
	require.NoError(t, err)
	_, err = p.Bind(req4("127.0.0.2", 40002))
	require.NoError(t, err)
	b, err := p.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err)
	require.Contains(t, []uint16{40001, 40003}, b.Port())

	q := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40007})
	for range 4 {
		b, err := q.ConnectAny(connectReq("192.0.2.1:80"))
		require.NoError(t, err)
		require.Zero(t, b.Port()%2, "even ports first")
	}
	b, err = q.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err)
	require.Equal(t, uint16(1), b.Port()%2, "then odd")
}

// A TIME_WAIT holder of the same four-tuple is taken over only when the
// TIME_WAIT table (Flows) says it may be (tcp_tw_reuse).
func TestConnectAnyTimeWaitTakeover(t *testing.T) {
	for _, reusable := range []bool{false, true} {
		flows := flowSet{}
		p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40000, Flows: flows})
		a, err := p.ConnectAny(connectReq("192.0.2.1:80"))
		require.NoError(t, err)
		require.NoError(t, p.TimeWait(a))
		if !reusable {
			flows[tuple.Tuple{Local: tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.1"), Port: 40000}, Remote: tuple.MustEndpoint("192.0.2.1:80")}] = true
		}
		_, err = p.ConnectAny(connectReq("192.0.2.1:80"))
		if reusable {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, table.ErrAddrNotAvail)
		}
	}
}

// Shard-affine connects: the picked port's flow hash lands on the shard
// asked for, for every shard.
func TestConnectAnyShardAffine(t *testing.T) {
	h := tuple.NewHasher()
	p := newPorts(t, table.PortsOptions{Hasher: h})
	for shard := range 8 {
		for i := range 20 {
			req := connectReq("192.0.2.1:443")
			req.Shards, req.Shard = 8, shard
			b, err := p.ConnectAny(req)
			require.NoError(t, err, "shard %d, connection %d", shard, i)
			tup := tuple.Tuple{Local: tuple.Endpoint{Addr: req.Local, Port: b.Port()}, Remote: req.Remote}
			require.Equal(t, shard, tuple.Shard(h.Hash(tup), 8))
		}
	}
	req := connectReq("192.0.2.1:443")
	req.Shards, req.Shard = 8, 8
	_, err := p.ConnectAny(req)
	require.ErrorIs(t, err, table.ErrInvalid)
}
