package table_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func newPorts(t *testing.T, opts table.PortsOptions) *table.Ports {
	p, err := table.NewPorts(opts)
	require.NoError(t, err)
	return p
}

func req4(addr string, port uint16) table.BindRequest {
	return table.BindRequest{Family: 4, Addr: tuple.MustAddr(addr), Port: port}
}

func TestPortsRejectsBadRequests(t *testing.T) {
	p := newPorts(t, table.PortsOptions{LocalAddrs: []tuple.Addr{tuple.MustAddr("127.0.0.1"), tuple.MustAddr("::1")}})
	for _, tc := range []struct {
		name string
		req  table.BindRequest
		err  error
	}{
		{"family 5", table.BindRequest{Family: 5, Addr: tuple.IPv4Unspecified(), Port: 80}, table.ErrInvalid},
		{"IPv6 address on family 4", table.BindRequest{Family: 4, Addr: tuple.MustAddr("::1"), Port: 80}, table.ErrInvalid},
		{"v6only on family 4", table.BindRequest{Family: 4, V6Only: true, Addr: tuple.IPv4Unspecified(), Port: 80}, table.ErrInvalid},
		{"v4-mapped on v6only", table.BindRequest{Family: 6, V6Only: true, Addr: tuple.MustAddr("127.0.0.1"), Port: 80}, table.ErrInvalid},
		{"negative device", table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, Device: -1}, table.ErrInvalid},
		{"not local", req4("192.0.2.1", 80), table.ErrAddrNotAvail},
	} {
		_, err := p.Bind(tc.req)
		require.ErrorIs(t, err, tc.err, tc.name)
	}
	_, err := table.NewPorts(table.PortsOptions{EphemeralLow: 2000, EphemeralHigh: 1000})
	require.ErrorIs(t, err, table.ErrCapacity)
	_, err = table.NewPorts(table.PortsOptions{LocalAddrs: []tuple.Addr{tuple.IPv4Unspecified()}})
	require.ErrorIs(t, err, table.ErrInvalidAddr)
}

func TestPortsLifecycle(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	a, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 8080, ReuseAddr: true})
	require.NoError(t, err)
	b, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 8080, ReuseAddr: true})
	require.NoError(t, err, "two SO_REUSEADDR sockets may both bind")
	require.NoError(t, p.Listen(a))
	require.ErrorIs(t, p.Listen(b), table.ErrAddrInUse, "the second listen fails, as listen(2) does")
	require.Equal(t, table.StateBound, b.State())
	require.NoError(t, p.Listen(a), "listening again is a no-op")

	require.NoError(t, errOf(p.Connect(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("127.0.0.1:9"))))
	require.ErrorIs(t, p.Listen(b), table.ErrInvalid, "listen on a connected socket")
	require.NoError(t, p.TimeWait(b))
	require.Equal(t, table.StateTimeWait, b.State())
	require.NoError(t, p.Release(b))
	require.ErrorIs(t, p.Release(b), table.ErrInvalid)
	require.NoError(t, p.Release(a))

	c, err := p.Bind(req4("127.0.0.1", 8080))
	require.NoError(t, err, "released ports are free again")
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), table.ErrClosed)
	_, err = p.Bind(req4("127.0.0.1", 8081))
	require.ErrorIs(t, err, table.ErrClosed)
	require.ErrorIs(t, p.Listen(c), table.ErrClosed)
}

// A wildcard socket that connects narrows to its source address: a later
// bind of another address on the port no longer meets it.
func TestPortsConnectNarrowsWildcard(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	a, err := p.Bind(req4("0.0.0.0", 7000))
	require.NoError(t, err)
	_, err = p.Bind(req4("127.0.0.2", 7000))
	require.ErrorIs(t, err, table.ErrAddrInUse)
	require.NoError(t, errOf(p.Connect(a, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("127.0.0.1:9"))))
	require.Equal(t, tuple.MustAddr("127.0.0.1"), a.Addr())
	_, err = p.Bind(req4("127.0.0.2", 7000))
	require.NoError(t, err)
}

func TestPortsConnectChecksFlows(t *testing.T) {
	flows := flowSet{}
	p := newPorts(t, table.PortsOptions{Flows: flows})
	a, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 7001, ReuseAddr: true})
	require.NoError(t, err)
	b, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 7001, ReuseAddr: true})
	require.NoError(t, err)
	remote := tuple.MustEndpoint("127.0.0.1:9")
	require.NoError(t, errOf(p.Connect(a, tuple.MustAddr("127.0.0.1"), remote)))
	flows[tuple.Tuple{Local: tuple.MustEndpoint("127.0.0.1:7001"), Remote: remote}] = true
	require.ErrorIs(t, errOf(p.Connect(b, tuple.MustAddr("127.0.0.1"), remote)), table.ErrAddrNotAvail)
	require.NoError(t, errOf(p.Connect(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("127.0.0.1:10"))))
}

// Port 0 picks a free port in the range, never shares one (even where
// SO_REUSEADDR would allow it), skips reserved ports and reports
// ErrNoPorts when the range is used up. With SO_REUSEADDR it takes the
// lower half first; within a half, odd ports before even ones.
func TestPortsPicksPorts(t *testing.T) {
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40007, Reserved: []uint16{40003}})
	var picks []uint16
	for range 7 {
		b, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), ReuseAddr: true})
		require.NoError(t, err)
		picks = append(picks, b.Port())
	}
	_, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified()})
	require.ErrorIs(t, err, table.ErrNoPorts)
	seen := map[uint16]bool{}
	for _, port := range picks {
		require.True(t, port >= 40000 && port <= 40007 && port != 40003, "port %d", port)
		require.False(t, seen[port], "port %d picked twice", port)
		seen[port] = true
	}
	require.Equal(t, uint16(40001), picks[0], "the lower half's only free odd port comes first")
	for _, port := range picks[1:3] {
		require.Less(t, port, uint16(40004), "the lower half is used up first")
	}
	require.Equal(t, uint16(1), picks[3]%2, "odd first in the upper half too")
}

// Racing binds of one address: exactly one wins, every time.
func TestPortsConcurrentBindsConflict(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	for port := uint16(10000); port < 10200; port++ {
		var wg sync.WaitGroup
		wins := make(chan *table.Binding, 4)
		start := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				addr := "0.0.0.0"
				if g%2 == 1 {
					addr = "127.0.0.1"
				}
				if b, err := p.Bind(req4(addr, port)); err == nil {
					wins <- b
				}
			}()
		}
		close(start)
		wg.Wait()
		close(wins)
		n := 0
		for range wins {
			n++
		}
		require.Equal(t, 1, n, "port %d", port)
	}
}

// A Binding belongs to its table: nil and another table's bindings get
// ErrInvalid from every call, and the other table is left as it was.
func TestPortsForeignOrNilBinding(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	other := newPorts(t, table.PortsOptions{})
	foreign, err := other.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 8080})
	require.NoError(t, err)
	for _, b := range []*table.Binding{nil, foreign} {
		require.ErrorIs(t, p.Release(b), table.ErrInvalid)
		require.ErrorIs(t, p.Listen(b), table.ErrInvalid)
		require.ErrorIs(t, p.TimeWait(b), table.ErrInvalid)
		require.ErrorIs(t, errOf(p.Connect(b, tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("192.0.2.1:80"))), table.ErrInvalid)
		_, err := p.Inherit(b, tuple.MustAddr("127.0.0.1"))
		require.ErrorIs(t, err, table.ErrInvalid)
	}
	require.Equal(t, table.StateBound, foreign.State(), "the other table still holds it")
	_, err = other.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: 8080})
	require.ErrorIs(t, err, table.ErrAddrInUse, "and still refuses a conflicting bind")
	require.NoError(t, other.Release(foreign))
}

// A listener's children and TIME_WAIT entries are counted in classes, not
// walked: ten thousand of each leave the port with three records to
// compare a bind with, and release in O(1) each.
func TestPortsHoldersGroupedInClasses(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	l, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReuseAddr: true})
	require.NoError(t, err)
	require.NoError(t, p.Listen(l))
	const n = 10000
	children := make([]*table.Binding, n)
	for i := range children {
		children[i], err = p.Inherit(l, tuple.MustAddr("192.0.2.1"))
		require.NoError(t, err)
		if i%2 == 0 {
			require.NoError(t, p.TimeWait(children[i]))
		}
	}
	require.Equal(t, 3, p.PortClasses(443), "listener, children, TIME_WAIT")
	_, err = p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.1"), Port: 443})
	require.ErrorIs(t, err, table.ErrAddrInUse)
	for i, c := range children {
		require.NoError(t, p.Release(c), "child %d", i)
	}
	require.Equal(t, 1, p.PortClasses(443))
	require.NoError(t, p.Release(l))
	require.Zero(t, p.PortClasses(443))
	_, err = p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.1"), Port: 443})
	require.NoError(t, err, "every holder gone: the port is free")
}

// A TIME_WAIT binding whose entry expired before its Release arrived (the
// FlowChecker says the tuple is free) does not keep a new connection from
// the tuple, and its late Release leaves the new connection's hold alone.
func TestPortsLateTimeWaitReleaseAfterNewConnection(t *testing.T) {
	flows := &twChecker{entries: map[tuple.Tuple]*table.Binding{}}
	p := newPorts(t, table.PortsOptions{EphemeralLow: 40000, EphemeralHigh: 40000, Flows: flows})
	old, err := p.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err)
	require.NoError(t, p.TimeWait(old.Binding))
	// No entry in the checker: it expired, its release is on its way.
	fresh, err := p.ConnectAny(connectReq("192.0.2.1:80"))
	require.NoError(t, err, "an expired entry's tuple is free")
	require.Equal(t, old.Tuple, fresh.Tuple)
	require.False(t, fresh.Reused)
	require.NoError(t, p.Release(old.Binding), "the late release")
	_, err = p.ConnectAny(connectReq("192.0.2.1:80"))
	require.ErrorIs(t, err, table.ErrAddrNotAvail, "the new connection still holds the tuple")
	require.Equal(t, table.StateConnected, fresh.Binding.State())
	require.Equal(t, tuple.MustEndpoint("192.0.2.1:80"), fresh.Binding.Remote())
}

// All yields every binding once, with its local endpoint, and may call
// back into the table.
func TestPortsAll(t *testing.T) {
	p := newPorts(t, table.PortsOptions{})
	want := map[*table.Binding]tuple.Endpoint{}
	for i := range 600 { // over every stripe
		b, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), Port: uint16(1000 + i)})
		require.NoError(t, err)
		want[b] = tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.1"), Port: uint16(1000 + i)}
	}
	got := map[*table.Binding]tuple.Endpoint{}
	for ep, b := range p.All() {
		_, dup := got[b]
		require.False(t, dup)
		got[b] = ep
		require.Equal(t, ep.Port, b.Port(), "yield may call back into the table")
	}
	require.Equal(t, want, got)
	n := 0
	for range p.All() {
		if n++; n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
}
