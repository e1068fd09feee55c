package table_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func udpBind(addr string, port uint16, reuseAddr, reusePort bool, owner uint32) table.BindRequest {
	a := tuple.MustAddr(addr)
	fam := 4
	if !a.Is4() {
		fam = 6
	}
	return table.BindRequest{Family: fam, Addr: a, Port: port, ReuseAddr: reuseAddr, ReusePort: reusePort, Owner: owner}
}

// UDP's sharing rules, one by one, and the table's errors.
func TestUDPPorts(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{LocalAddrs: []tuple.Addr{tuple.MustAddr("192.0.2.1"), tuple.MustAddr("192.0.2.2")}})
	require.NoError(t, err)

	a, err := p.Bind(udpBind("0.0.0.0", 53, false, false, 0), 0)
	require.NoError(t, err)
	_, err = p.Bind(udpBind("192.0.2.1", 53, false, false, 0), 0)
	require.ErrorIs(t, err, table.ErrAddrInUse, "a specific address under a wildcard")
	require.NoError(t, a.Release())
	require.ErrorIs(t, a.Release(), table.ErrInvalid, "released twice")

	// SO_REUSEADDR on both: shared, whatever the owners.
	x, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	y, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 1000), 0)
	require.NoError(t, err)
	require.NoError(t, x.Release())
	require.NoError(t, y.Release())

	// SO_REUSEPORT: shared by one owner only (no port hijacking).
	g1, err := p.Bind(udpBind("0.0.0.0", 443, false, true, 7), 0)
	require.NoError(t, err)
	g2, err := p.Bind(udpBind("0.0.0.0", 443, false, true, 7), 0)
	require.NoError(t, err)
	_, err = p.Bind(udpBind("0.0.0.0", 443, false, true, 8), 0)
	require.ErrorIs(t, err, table.ErrAddrInUse, "another owner's group")
	require.NotSame(t, g1, g2)

	// connect of a wildcard socket takes the routed source: a bind of
	// another specific address then no longer meets it.
	c, err := p.Bind(udpBind("0.0.0.0", 5000, false, false, 0), 0)
	require.NoError(t, err)
	_, err = p.Bind(udpBind("192.0.2.2", 5000, false, false, 0), 0)
	require.ErrorIs(t, err, table.ErrAddrInUse)
	require.NoError(t, c.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.1:53")))
	require.Equal(t, tuple.MustAddr("192.0.2.1"), c.Addr())
	require.Equal(t, tuple.MustEndpoint("198.51.100.1:53"), c.Remote())
	_, err = p.Bind(udpBind("192.0.2.2", 5000, false, false, 0), 0)
	require.NoError(t, err)
	require.ErrorIs(t, c.Connect(tuple.IPv4Unspecified(), tuple.MustEndpoint("198.51.100.1:53")), table.ErrInvalid)
	require.ErrorIs(t, c.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.1:0")), table.ErrInvalid)
	require.ErrorIs(t, c.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("[2001:db8::1]:53")), table.ErrInvalid)

	// Bad input.
	_, err = p.Bind(udpBind("203.0.113.9", 53, false, false, 0), 0)
	require.ErrorIs(t, err, table.ErrAddrNotAvail)
	_, err = p.Bind(table.BindRequest{Family: 5, Addr: tuple.MustAddr("192.0.2.1"), Port: 1}, 0)
	require.ErrorIs(t, err, table.ErrInvalid)
	_, err = p.Bind(table.BindRequest{Family: 6, V6Only: true, Addr: tuple.MustAddr("192.0.2.1"), Port: 1}, 0)
	require.ErrorIs(t, err, table.ErrInvalid, "v6only binding a v4-mapped address")
	_, err = table.NewUDPPorts[int](table.UDPPortsOptions{EphemeralLow: 10, EphemeralHigh: 9})
	require.ErrorIs(t, err, table.ErrInvalid)

	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), table.ErrClosed)
	_, err = p.Bind(udpBind("0.0.0.0", 1, false, false, 0), 0)
	require.ErrorIs(t, err, table.ErrClosed)
	require.ErrorIs(t, g1.Release(), table.ErrClosed)
	require.ErrorIs(t, g2.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.1:53")), table.ErrClosed)
}

// Port 0 takes a port of the range that no socket holds, and reports
// ErrNoPorts when there is none.
func TestUDPPortsPort0(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{EphemeralLow: 40000, EphemeralHigh: 40003})
	require.NoError(t, err)
	seen := map[uint16]bool{}
	for range 4 {
		b, err := p.Bind(udpBind("0.0.0.0", 0, true, true, 0), 0)
		require.NoError(t, err)
		require.GreaterOrEqual(t, b.Port(), uint16(40000))
		require.LessOrEqual(t, b.Port(), uint16(40003))
		require.False(t, seen[b.Port()], "port 0 never shares")
		seen[b.Port()] = true
	}
	_, err = p.Bind(udpBind("0.0.0.0", 0, true, true, 0), 0)
	require.ErrorIs(t, err, table.ErrNoPorts)
}

// Concurrent binds, connects, releases and lookups on a few ports: under -race,
// and at the end the table holds exactly what was not released (every
// port can be bound exclusively again).
func TestUDPPortsStress(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				port := uint16(6000 + (g+i)%5)
				b, err := p.Bind(udpBind("127.0.0.1", port, true, i%2 == 0, uint32(g%2)), 0)
				if err != nil {
					assert.ErrorIs(t, err, table.ErrAddrInUse)
					continue
				}
				if i%3 == 0 {
					assert.NoError(t, b.Connect(tuple.MustAddr("127.0.0.1"), tuple.MustEndpoint("127.0.0.1:53")))
				}
				assert.NoError(t, b.Release())
			}
		}()
	}
	wg.Add(1)
	go func() { // datagrams meanwhile: whatever they find must be a live socket of their port
		defer wg.Done()
		for i := range 8000 {
			f := tuple.Tuple{Local: tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.1"), Port: uint16(6000 + i%5)},
				Remote: tuple.MustEndpoint("127.0.0.1:53")}
			if b, ok := p.Lookup(f, 0); ok {
				assert.Equal(t, f.Local.Port, b.Port())
			}
		}
	}()
	wg.Wait()
	for port := uint16(6000); port < 6005; port++ {
		b, err := p.Bind(udpBind("0.0.0.0", port, false, false, 0), 0)
		require.NoError(t, err, "port %d left held", port)
		require.NoError(t, b.Release())
	}
}

// Lookup: exact address before wildcard, a connected socket for its peer
// only, the newest of SO_REUSEADDR equals, a reuseport group's members by
// flow hash (never a connected one for other peers), none after release.
func TestUDPPortsLookup(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
	require.NoError(t, err)
	flow := func(dst, src string) tuple.Tuple { return tuple.MustNew(dst, src) }
	any1, err := p.Bind(udpBind("0.0.0.0", 53, true, false, 0), 0)
	require.NoError(t, err)
	exact, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	got, ok := p.Lookup(flow("192.0.2.1:53", "198.51.100.7:4000"), 0)
	require.True(t, ok)
	require.Same(t, exact, got, "the exact address first")
	got, _ = p.Lookup(flow("192.0.2.9:53", "198.51.100.7:4000"), 0)
	require.Same(t, any1, got, "the wildcard for other addresses")
	newer, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	got, _ = p.Lookup(flow("192.0.2.1:53", "198.51.100.7:4000"), 0)
	require.Same(t, newer, got, "the newest of equals")

	conn, err := p.Bind(udpBind("192.0.2.1", 53, true, false, 0), 0)
	require.NoError(t, err)
	require.NoError(t, conn.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.7:4000")))
	got, _ = p.Lookup(flow("192.0.2.1:53", "198.51.100.7:4000"), 0)
	require.Same(t, conn, got, "the connected socket for its peer")
	got, _ = p.Lookup(flow("192.0.2.1:53", "198.51.100.7:4001"), 0)
	require.Same(t, newer, got, "not for another port of the peer")
	got, _ = p.Lookup(flow("[2001:db8::1]:53", "[2001:db8::7]:4000"), 0)
	require.Nil(t, got, "no AF_INET socket takes IPv6")

	_, ok = p.Lookup(flow("192.0.2.1:54", "198.51.100.7:4000"), 0)
	require.False(t, ok, "no socket: port unreachable")

	// A group of three, one connected.
	var members []*table.UDPBinding[int]
	for range 3 {
		m, err := p.Bind(udpBind("0.0.0.0", 443, false, true, 5), 0)
		require.NoError(t, err)
		members = append(members, m)
	}
	require.True(t, members[0].SameGroup(members[2]))
	require.False(t, members[0].SameGroup(any1))
	require.NoError(t, members[1].Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.9:9")))
	seen := map[*table.UDPBinding[int]]int{}
	for i := range 400 {
		got, ok := p.Lookup(tuple.Tuple{Local: tuple.MustEndpoint("192.0.2.1:443"),
			Remote: tuple.Endpoint{Addr: tuple.MustAddr("198.51.100.8"), Port: uint16(1024 + i)}}, 0)
		require.True(t, ok)
		seen[got]++
	}
	require.Len(t, seen, 2, "both unconnected members, never the connected one: %v", seen)
	require.Zero(t, seen[members[1]])
	got, _ = p.Lookup(flow("192.0.2.1:443", "198.51.100.9:9"), 0)
	require.Same(t, members[1], got, "the connected member for its peer")

	// The connect moved members[1] to 192.0.2.1 and out of the wildcard's
	// group: a socket binding 192.0.2.1:443 with SO_REUSEPORT starts a
	// group with it and takes none of the wildcard's datagrams.
	require.False(t, members[1].SameGroup(members[0]), "a wildcard member leaves its group at connect")
	atAddr, err := p.Bind(udpBind("192.0.2.1", 443, false, true, 5), 0)
	require.NoError(t, err)
	require.True(t, atAddr.SameGroup(members[1]))
	require.False(t, atAddr.SameGroup(members[0]))
	for i := range 200 {
		src := tuple.Endpoint{Addr: tuple.MustAddr("198.51.100.8"), Port: uint16(1024 + i)}
		got, _ := p.Lookup(tuple.Tuple{Local: tuple.MustEndpoint("192.0.2.2:443"), Remote: src}, 0)
		require.True(t, got.SameGroup(members[0]), "datagram %d to the wildcard's group went to %p", i, got)
		got, _ = p.Lookup(tuple.Tuple{Local: tuple.MustEndpoint("192.0.2.1:443"), Remote: src}, 0)
		require.Same(t, atAddr, got, "the exact address's unconnected member")
	}
	require.NoError(t, atAddr.Release())

	for _, m := range members {
		require.NoError(t, m.Release())
	}
	_, ok = p.Lookup(flow("192.0.2.1:443", "198.51.100.8:1024"), 0)
	require.False(t, ok)
	require.NoError(t, p.Close())
	_, ok = p.Lookup(flow("192.0.2.1:53", "198.51.100.7:4000"), 0)
	require.False(t, ok, "nothing after Close")
}

// Disconnect (connect(2) with AF_UNSPEC) undoes a connect as
// __udp_disconnect does: the peer and the four-tuple entry go, a wildcard
// socket gets its wildcard back at the head of the chain and outside any
// group, a specific address and a given port stay, a picked port goes.
func TestUDPPortsDisconnect(t *testing.T) {
	p, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
	require.NoError(t, err)
	flow := func(dst, src string) tuple.Tuple { return tuple.MustNew(dst, src) }
	lookup := func(dst, src string) *table.UDPBinding[int] {
		t.Helper()
		b, _ := p.Lookup(flow(dst, src), 0)
		return b
	}

	// A wildcard socket: connect moves it to the route's source, and the
	// disconnect back to the wildcard.
	w, err := p.Bind(udpBind("0.0.0.0", 53, true, false, 0), 1)
	require.NoError(t, err)
	require.NoError(t, w.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.7:4000")))
	require.Nil(t, lookup("192.0.2.2:53", "198.51.100.7:4000"), "connected at 192.0.2.1")
	released, err := w.Disconnect()
	require.NoError(t, err)
	require.False(t, released, "a given port stays")
	require.Equal(t, tuple.IPv4Unspecified(), w.Addr())
	require.Equal(t, tuple.Endpoint{}, w.Remote())
	require.Same(t, w, lookup("192.0.2.2:53", "198.51.100.9:1"), "the wildcard again, for any peer")

	// A specific address stays through the disconnect.
	s, err := p.Bind(udpBind("192.0.2.1", 54, false, false, 0), 2)
	require.NoError(t, err)
	require.NoError(t, s.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.7:4000")))
	_, err = s.Disconnect()
	require.NoError(t, err)
	require.Equal(t, tuple.MustAddr("192.0.2.1"), s.Addr())
	require.Same(t, s, lookup("192.0.2.1:54", "198.51.100.9:1"))
	require.Nil(t, lookup("192.0.2.2:54", "198.51.100.9:1"))

	// A picked port goes back, as at Release.
	e, err := p.Bind(udpBind("0.0.0.0", 0, false, false, 0), 3)
	require.NoError(t, err)
	port := e.Port()
	require.NoError(t, e.Connect(tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.7:4000")))
	released, err = e.Disconnect()
	require.NoError(t, err)
	require.True(t, released)
	require.Nil(t, lookup(tuple.Endpoint{Addr: tuple.MustAddr("192.0.2.1"), Port: port}.String(), "198.51.100.7:4000"))
	_, err = e.Disconnect()
	require.ErrorIs(t, err, table.ErrInvalid, "a released binding")
	_, err = p.Bind(udpBind("0.0.0.0", port, false, false, 0), 4)
	require.NoError(t, err, "the port is free")

	// Group members: a connected-and-disconnected one comes back at the
	// head of the wildcard's chain, alone; one disconnected unconnected
	// leaves its group too (the kernel's rehash detaches it even with its
	// address unchanged).
	for _, connect := range []bool{true, false} {
		var members []*table.UDPBinding[int]
		port := uint16(443)
		if !connect {
			port = 444
		}
		for i := range 3 {
			m, err := p.Bind(udpBind("::", port, false, true, 7), 10+i)
			require.NoError(t, err)
			members = append(members, m)
		}
		require.True(t, members[0].SameGroup(members[2]))
		if connect {
			require.NoError(t, members[0].Connect(tuple.MustAddr("2001:db8::1"), tuple.MustEndpoint("[2001:db8::7]:4000")))
		}
		_, err := members[0].Disconnect()
		require.NoError(t, err)
		require.False(t, members[0].SameGroup(members[1]), "connect %v: out of its group", connect)
		require.True(t, members[1].SameGroup(members[2]))
		for i := range 100 {
			at := func(dst, src string) *table.UDPBinding[int] {
				got, _ := p.Lookup(tuple.Tuple{Local: tuple.Endpoint{Addr: tuple.MustAddr(dst), Port: port},
					Remote: tuple.Endpoint{Addr: tuple.MustAddr(src), Port: uint16(1024 + i)}}, 0)
				return got
			}
			// IPv6 SO_REUSEPORT sockets sit at the chain's tail in bind
			// order: members[0] comes first unless it is elsewhere.
			require.Same(t, members[0], at("192.0.2.1", "198.51.100.8"), "connect %v: first in the chain, no group to hand to", connect)
			if connect {
				// It still holds its old peer's IPv6 address (sk_v6_daddr):
				// it takes that address's datagrams, from any port, and
				// no other IPv6 ones.
				require.Same(t, members[0], at("2001:db8::1", "2001:db8::7"))
				got := at("2001:db8::1", "2001:db8::8")
				require.True(t, got.SameGroup(members[1]), "another source goes to the group")
			} else {
				require.Same(t, members[0], at("2001:db8::1", "2001:db8::8"))
			}
		}
	}

	require.NoError(t, p.Close())
	_, err = w.Disconnect()
	require.ErrorIs(t, err, table.ErrClosed)
}
