package table_test

import (
	"errors"
	"testing"
	"time"

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
		b, err := bindingOf(p.ConnectAny(connectReq("192.0.2.1:" + []string{"80", "81", "82", "83", "84", "85"}[i])))
		require.NoError(t, err, "destination %d", i)
		require.Equal(t, table.StateConnected, b.State())
	}
	a, err := bindingOf(p.ConnectAny(connectReq("192.0.2.9:80")))
	require.NoError(t, err)
	b, err := bindingOf(p.ConnectAny(connectReq("192.0.2.9:80")))
	require.NoError(t, err)
	require.NotEqual(t, a.Port(), b.Port())
	_, err = bindingOf(p.ConnectAny(connectReq("192.0.2.9:80")))
	require.ErrorIs(t, err, table.ErrAddrNotAvail)
	require.NoError(t, p.Release(a))
	c, err := bindingOf(p.ConnectAny(connectReq("192.0.2.9:80")))
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
	b, err := bindingOf(p.ConnectAny(connectReq("192.0.2.1:80")))
	require.NoError(t, err)
	require.Contains(t, []uint16{40001, 40003}, b.Port())

	q := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40007})
	for range 4 {
		b, err := bindingOf(q.ConnectAny(connectReq("192.0.2.1:80")))
		require.NoError(t, err)
		require.Zero(t, b.Port()%2, "even ports first")
	}
	b, err = bindingOf(q.ConnectAny(connectReq("192.0.2.1:80")))
	require.NoError(t, err)
	require.Equal(t, uint16(1), b.Port()%2, "then odd")
}

// twChecker is a FlowChecker over a set of TIME_WAIT tuples, each with the
// binding its entry owns: a takeover removes the entry and hands the
// binding over, as a TIME_WAIT table does.
type twChecker struct {
	reusable bool
	entries  map[tuple.Tuple]*table.Binding
	inUse    map[tuple.Tuple]bool
}

func (c *twChecker) ClaimFlow(t tuple.Tuple, explicitBind bool) table.FlowClaim {
	if c.inUse[t] {
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	owner, ok := c.entries[t]
	switch {
	case !ok:
		return table.FlowClaim{}
	case !c.reusable && !explicitBind:
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	delete(c.entries, t)
	return table.FlowClaim{Verdict: table.FlowTakenOver, Owner: owner,
		Reuse: table.Reuse{WriteSeq: 1234, TSRecent: 99, TSRecentStamp: 5 * time.Second}}
}

// A TIME_WAIT holder of the same four-tuple is taken over only when the
// TIME_WAIT table (Flows) says it may be (tcp_tw_reuse): then ConnectAny
// returns the tuple and what it inherits in the same call, and the entry's
// binding is released exactly once, by Ports.
func TestConnectAnyTimeWaitTakeover(t *testing.T) {
	for _, reusable := range []bool{false, true} {
		flows := &twChecker{reusable: reusable, entries: map[tuple.Tuple]*table.Binding{}}
		p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40000, Flows: flows})
		first, err := p.ConnectAny(connectReq("192.0.2.1:80"))
		require.NoError(t, err)
		require.NoError(t, p.TimeWait(first.Binding))
		flows.entries[first.Tuple] = first.Binding
		res, err := p.ConnectAny(connectReq("192.0.2.1:80"))
		if !reusable {
			require.ErrorIs(t, err, table.ErrAddrNotAvail)
			require.Equal(t, table.StateTimeWait, first.Binding.State())
			continue
		}
		require.NoError(t, err)
		require.Equal(t, first.Tuple, res.Tuple)
		require.True(t, res.Reused)
		require.Equal(t, table.Reuse{WriteSeq: 1234, TSRecent: 99, TSRecentStamp: 5 * time.Second}, res.Reuse)
		require.Equal(t, table.StateReleased, first.Binding.State(), "the taken-over entry's binding is released")
		require.ErrorIs(t, p.Release(first.Binding), table.ErrInvalid, "and only once")
		require.Equal(t, table.StateConnected, res.Binding.State())
	}
}

// Without a FlowChecker, a TIME_WAIT binding of the tuple is never taken
// over: the table cannot know whether tcp_tw_reuse would allow it.
func TestConnectAnyTimeWaitWithoutChecker(t *testing.T) {
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40000})
	first, err := p.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err)
	require.NoError(t, p.TimeWait(first.Binding))
	_, err = p.ConnectAny(connectReq("192.0.2.1:80"))
	require.ErrorIs(t, err, table.ErrAddrNotAvail)
	require.NoError(t, p.Release(first.Binding))
	_, err = p.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err, "released: the tuple is free")
}

// An explicitly bound port takes a TIME_WAIT tuple over through Connect
// whatever tcp_tw_reuse says (Linux's twp == NULL path), and Connect
// returns what the connection inherits.
func TestConnectTimeWaitTakeoverExplicitBind(t *testing.T) {
	flows := &twChecker{entries: map[tuple.Tuple]*table.Binding{}}
	p := newPorts(t, table.PortsOptions{Flows: flows})
	old, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 5000, ReuseAddr: true})
	require.NoError(t, err)
	remote := tuple.MustEndpoint("192.0.2.1:80")
	first, err := p.Connect(old, tuple.MustAddr("127.0.0.1"), remote)
	require.NoError(t, err)
	require.NoError(t, p.TimeWait(old))
	flows.entries[first.Tuple] = old
	b, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 5000, ReuseAddr: true})
	require.NoError(t, err, "SO_REUSEADDR shares the port with a TIME_WAIT holder")
	res, err := p.Connect(b, tuple.MustAddr("127.0.0.1"), remote)
	require.NoError(t, err)
	require.True(t, res.Reused)
	require.Equal(t, uint32(1234), res.Reuse.WriteSeq)
	require.Equal(t, table.StateReleased, old.State())
	// And the tuple is now b's: a third socket cannot connect to it.
	c, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 5000, ReuseAddr: true})
	require.NoError(t, err)
	require.ErrorIs(t, errOf(p.Connect(c, tuple.MustAddr("127.0.0.1"), remote)), table.ErrAddrNotAvail)
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
			b, err := bindingOf(p.ConnectAny(req))
			require.NoError(t, err, "shard %d, connection %d", shard, i)
			tup := tuple.Tuple{Local: tuple.Endpoint{Addr: req.Local, Port: b.Port()}, Remote: req.Remote}
			require.Equal(t, shard, tuple.Steer(h.Hash(tup), 8), "steered by tuple.Steer, as accept.Sharded.Steer is")
		}
	}
	req := connectReq("192.0.2.1:443")
	req.Shards, req.Shard = 8, 8
	_, err := bindingOf(p.ConnectAny(req))
	require.ErrorIs(t, err, table.ErrInvalid)
}

// bindingOf is ConnectAny's binding, for tests that need only that.
func bindingOf(r table.ConnectResult, err error) (*table.Binding, error) { return r.Binding, err }

// errOf is a Connect's error, for tests that need only that.
func errOf(_ table.ConnectResult, err error) error { return err }

// RFC 6056's offsets come from a PRF under each table's own secret, not
// from the stack's tuple.Hasher (keyed, but not a PRF, and shared by the
// tables): two bind tables with one Hasher pick different ports towards
// the same destinations.
func TestConnectAnyOffsetsHaveTheirOwnSecret(t *testing.T) {
	h := tuple.NewHasher()
	a := newPorts(t, table.PortsOptions{Hasher: h})
	b := newPorts(t, table.PortsOptions{Hasher: h})
	differ := 0
	for i := range 20 {
		dst := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Port: 443}
		req := table.ConnectRequest{Family: 4, Local: tuple.MustAddr("10.0.0.1"), Remote: dst}
		x, err := a.ConnectAny(req)
		require.NoError(t, err)
		y, err := b.ConnectAny(req)
		require.NoError(t, err)
		if x.Tuple.Local.Port != y.Tuple.Local.Port {
			differ++
		}
	}
	require.Greater(t, differ, 10, "the port sequence must not follow from the shared Hasher")
}

// errChecker refuses every tuple with Err set, counting the asks.
type errChecker struct {
	err  error
	asks int
}

func (c *errChecker) ClaimFlow(tuple.Tuple, bool) table.FlowClaim {
	c.asks++
	return table.FlowClaim{Verdict: table.FlowInUse, Err: c.err}
}

// A connect's own checker (ConnectRequest.Flows, ConnectWith) is asked in
// place of PortsOptions.Flows, and its FlowClaim.Err ends the connect with
// that error at once (ConnectAny does not go on to the next port).
func TestConnectOwnChecker(t *testing.T) {
	shared := &errChecker{err: table.ErrInvalid}
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40100, Flows: shared})
	full := errors.New("established table full")
	own := &errChecker{err: full}
	req := connectReq("192.0.2.1:80")
	req.Flows = own
	_, err := p.ConnectAny(req)
	require.ErrorIs(t, err, full)
	require.Equal(t, 1, own.asks, "the error ends the search")
	require.Zero(t, shared.asks, "the table's checker is not asked")
	held := 0
	for range p.All() {
		held++
	}
	require.Zero(t, held, "nothing is held after the error")

	b, err := p.Bind(req4("127.0.0.1", 5000))
	require.NoError(t, err)
	_, err = p.ConnectWith(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("192.0.2.1:80"), own)
	require.ErrorIs(t, err, full)
	require.Equal(t, table.StateBound, b.State(), "a refused connect leaves the socket bound")
	require.Zero(t, shared.asks)

	own.err = nil
	_, err = p.ConnectWith(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("192.0.2.1:80"), own)
	require.ErrorIs(t, err, table.ErrAddrNotAvail, "in use without an error: EADDRNOTAVAIL")
	ok := &twChecker{entries: map[tuple.Tuple]*table.Binding{}}
	res, err := p.ConnectWith(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("192.0.2.1:80"), ok)
	require.NoError(t, err)
	require.Equal(t, table.StateConnected, res.Binding.State())
}
