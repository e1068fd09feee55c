package table_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

func newListeners(t testing.TB) (*table.Ports, *table.ListenerIndex[int]) {
	ports, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
	require.NoError(t, err)
	return ports, idx
}

func listen(t testing.TB, ports *table.Ports, idx *table.ListenerIndex[int], req table.BindRequest, v int) *table.Listener[int] {
	b, err := ports.Bind(req)
	require.NoError(t, err)
	l, err := idx.Listen(b, v)
	require.NoError(t, err)
	return l
}

func client(i int) tuple.Endpoint {
	return tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: uint16(1024 + i%60000)}
}

// A SO_REUSEPORT group spreads flows evenly over its members (chi-square,
// p = 0.001), keeps each flow on one member, and when a member closes the
// others take all its flows.
func TestListenerIndexReuseportSpread(t *testing.T) {
	ports, idx := newListeners(t)
	req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true, Owner: 7}
	var members []*table.Listener[int]
	for i := range 4 {
		members = append(members, listen(t, ports, idx, req, i))
	}
	dst := tuple.MustEndpoint("192.0.2.1:80")
	const flows = 40000
	counts := make([]int, 4)
	for i := range flows {
		v, ok := lookupValue(idx, dst, client(i), 0)
		require.True(t, ok)
		again, _ := lookupValue(idx, dst, client(i), 0)
		require.Equal(t, v, again, "a flow stays on its member")
		counts[v]++
	}
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - flows/4.0
		chi += d * d / (flows / 4.0)
	}
	require.Less(t, chi, 16.27, "counts %v (chi-square %.1f, 3 degrees of freedom)", counts, chi)

	require.NoError(t, members[2].Close())
	require.ErrorIs(t, members[2].Close(), table.ErrClosed, "a second Close")
	for i := range flows / 10 {
		v, ok := lookupValue(idx, dst, client(i), 0)
		require.True(t, ok)
		require.NotEqual(t, 2, v, "a closed member gets no flows")
	}
}

// Another owner's SO_REUSEPORT socket cannot join (or even bind): no
// port hijacking.
func TestListenerIndexGroupNeedsSameOwner(t *testing.T) {
	ports, idx := newListeners(t)
	req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true, Owner: 7}
	listen(t, ports, idx, req, 0)
	req.Owner = 8
	_, err := ports.Bind(req)
	require.ErrorIs(t, err, table.ErrAddrInUse)
}

// The exact address beats the wildcard; a device-bound listener beats an
// unbound one on its device and is invisible on others; v6only takes no
// IPv4.
func TestListenerIndexChoice(t *testing.T) {
	ports, idx := newListeners(t)
	listen(t, ports, idx, table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true}, 0)
	listen(t, ports, idx, table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true, Device: 2}, 1)
	listen(t, ports, idx, table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.9"), Port: 80, ReusePort: true}, 2)
	listen(t, ports, idx, table.BindRequest{Family: 6, V6Only: true, Addr: tuple.IPv6Unspecified(), Port: 80}, 3)
	src := client(1)
	for _, tc := range []struct {
		dst    string
		device int
		want   int
		found  bool
	}{
		{"192.0.2.1:80", 0, 0, true},
		{"192.0.2.1:80", 2, 1, true},
		{"192.0.2.1:80", 3, 0, true},
		{"192.0.2.9:80", 2, 2, true},
		{"[2001:db8::1]:80", 0, 3, true},
		{"192.0.2.1:81", 0, 0, false},
	} {
		v, ok := lookupValue(idx, tuple.MustEndpoint(tc.dst), src, tc.device)
		require.Equal(t, tc.found, ok, "%s dev %d", tc.dst, tc.device)
		if ok {
			require.Equal(t, tc.want, v, "%s dev %d", tc.dst, tc.device)
		}
	}
}

// Lookups racing Listen and Close never miss while a stable wildcard
// listener covers the address, and only ever return listeners that were
// indexed (the churning exact-address ones, or the wildcard).
func TestListenerIndexConcurrentLookupAndChurn(t *testing.T) {
	ports, idx := newListeners(t)
	stable := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true}
	listen(t, ports, idx, stable, -1)
	dst := tuple.MustEndpoint("192.0.2.1:443")
	var stop atomic.Bool
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i += 2 {
				v, ok := lookupValue(idx, dst, client(i), 0)
				if !ok || v < -1 || v >= 400 {
					t.Errorf("lookup %d: %d %v", i, v, ok)
					return
				}
				lookups.Add(1)
				runtime.Gosched() // GOMAXPROCS=1: let the writer run
			}
		}()
	}
	churn := table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.1"), Port: 443, ReusePort: true}
	for i := range 400 {
		l := listen(t, ports, idx, churn, i)
		if i%2 == 0 { // a second member, so the group outlives one Close
			m := listen(t, ports, idx, churn, i)
			require.NoError(t, m.Close())
		}
		require.NoError(t, l.Close())
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	require.Positive(t, lookups.Load())
}

// Lookup stays O(1): 10,000 listeners on distinct addresses, each found,
// in an index that started with 2 slots and doubled them as buckets came
// (never past twice the buckets), while lookups of the first listeners ran.
func TestListenerIndexManyAddresses(t *testing.T) {
	ports, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{Slots: 2})
	require.NoError(t, err)
	require.Equal(t, 2, idx.SlotCount())
	addr := func(i int) tuple.Addr { return tuple.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	ep := func(i int) tuple.Endpoint { return tuple.Endpoint{Addr: addr(i), Port: uint16(1000 + i%5)} }
	const n, early = 10000, 64
	for i := range early {
		listen(t, ports, idx, table.BindRequest{Family: 4, Addr: addr(i), Port: ep(i).Port}, i)
	}
	stop := make(chan struct{})
	var wrong atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // lookups across every growth
		defer wg.Done()
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			if v, ok := lookupValue(idx, ep(j%early), client(j), 0); !ok || v != j%early {
				wrong.Add(1)
			}
		}
	}()
	for i := early; i < n; i++ {
		listen(t, ports, idx, table.BindRequest{Family: 4, Addr: addr(i), Port: ep(i).Port}, i)
	}
	close(stop)
	wg.Wait()
	require.Zero(t, wrong.Load(), "a lookup during growth missed a listener")
	require.GreaterOrEqual(t, idx.SlotCount(), n/2)
	require.LessOrEqual(t, idx.SlotCount(), 2*n)
	for i := range n {
		v, ok := lookupValue(idx, ep(i), client(i), 0)
		require.True(t, ok)
		require.Equal(t, i, v)
	}
}

// A Selector (the SO_ATTACH_REUSEPORT_EBPF analogue) picks the member; an
// invalid answer falls back to the flow hash. SetLoad steers flows away
// from a loaded member.
func TestListenerIndexSelectorAndLoad(t *testing.T) {
	ports, idx := newListeners(t)
	req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true}
	for i := range 4 {
		listen(t, ports, idx, req, i)
	}
	dst := tuple.MustEndpoint("192.0.2.1:80")
	count := func() []int {
		c := make([]int, 4)
		for i := range 4000 {
			v, ok := lookupValue(idx, dst, client(i), 0)
			require.True(t, ok)
			c[v]++
		}
		return c
	}
	idx.SetSelector(func(_, _ tuple.Endpoint, _ uint64, members []int) int {
		require.Len(t, members, 4)
		return 2
	})
	require.Equal(t, []int{0, 0, 4000, 0}, count())
	idx.SetSelector(func(_, _ tuple.Endpoint, _ uint64, _ []int) int { return -1 })
	for _, c := range count() {
		require.Greater(t, c, 800, "an invalid choice falls back to the hash")
	}
	idx.SetSelector(nil)
	loads := []int{0, 0, 100, 0}
	idx.SetLoad(func(v int) int { return loads[v] })
	c := count()
	require.Less(t, c[2], 400, "the loaded member gets only flows whose both choices are it: %v", c)
	idx.SetLoad(nil)
	for _, c := range count() {
		require.Greater(t, c, 800)
	}
}

// One registry (gVisor #7428: two registries drift): once a Ports has a
// listener index, a socket listens only through it, its Listener alone
// releases it, and closing the Ports empties the index.
func TestListenerIndexOneRegistry(t *testing.T) {
	ports, idx := newListeners(t)
	_, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
	require.ErrorIs(t, err, table.ErrInvalid, "a second index would be a second registry")
	_, err = table.NewListenerIndex[int](nil, table.ListenerIndexOptions{})
	require.ErrorIs(t, err, table.ErrInvalid)

	req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80}
	b, err := ports.Bind(req)
	require.NoError(t, err)
	require.ErrorIs(t, ports.Listen(b), table.ErrInvalid, "listening behind the index's back")
	require.Equal(t, table.StateBound, b.State())
	dst := tuple.MustEndpoint("192.0.2.1:80")
	_, ok := lookupValue(idx, dst, client(1), 0)
	require.False(t, ok)

	l, err := idx.Listen(b, 1)
	require.NoError(t, err)
	require.Equal(t, table.StateListen, b.State())
	_, err = idx.Listen(b, 2)
	require.ErrorIs(t, err, table.ErrInvalid, "already listening")
	require.ErrorIs(t, ports.Release(b), table.ErrInvalid, "the listener must be closed, not its binding released")
	v, ok := lookupValue(idx, dst, client(1), 0)
	require.True(t, ok)
	require.Equal(t, 1, v)

	require.NoError(t, l.Close())
	_, ok = lookupValue(idx, dst, client(1), 0)
	require.False(t, ok)
	b2, err := ports.Bind(req)
	require.NoError(t, err, "closing the listener released its port")
	require.ErrorIs(t, l.Close(), table.ErrClosed, "a second Close")

	other, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	foreign, err := other.Bind(req)
	require.NoError(t, err)
	_, err = idx.Listen(foreign, 3)
	require.ErrorIs(t, err, table.ErrInvalid, "a binding of another table")
	require.NoError(t, other.Listen(foreign), "a table without an index listens by itself")

	l2, err := idx.Listen(b2, 4)
	require.NoError(t, err)
	require.NoError(t, ports.Close())
	_, ok = lookupValue(idx, dst, client(1), 0)
	require.False(t, ok, "closing the bind table empties its index")
	require.ErrorIs(t, l2.Close(), table.ErrClosed)
	_, err = idx.Listen(b2, 5)
	require.ErrorIs(t, err, table.ErrClosed)
	_, err = table.NewListenerIndex[int](other, table.ListenerIndexOptions{})
	require.NoError(t, err)
}

// lookupValue is Lookup's listener's value.
func lookupValue[V comparable](idx *table.ListenerIndex[V], dst, src tuple.Endpoint, device int) (V, bool) {
	h, ok := idx.Lookup(dst, src, device)
	if !ok {
		var zero V
		return zero, false
	}
	return h.Value(), true
}

// Lookup hands back the Listener itself: its value, its binding and its
// group; LookupHashed with the flow's hash gives the same answer, so a
// stack hashes a flow once.
func TestListenerIndexLookupHashed(t *testing.T) {
	ports, idx := newListeners(t)
	req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 80, ReusePort: true}
	var members []*table.Listener[int]
	for i := range 3 {
		members = append(members, listen(t, ports, idx, req, i))
	}
	exact := listen(t, ports, idx, table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.9"), Port: 80, ReusePort: true}, 9)
	h := idx.Hasher()
	require.Same(t, ports.Hasher(), h)
	for i := range 1000 {
		for _, dst := range []tuple.Endpoint{tuple.MustEndpoint("192.0.2.1:80"), tuple.MustEndpoint("192.0.2.9:80")} {
			src := client(i)
			a, ok := idx.Lookup(dst, src, 0)
			require.True(t, ok)
			b, ok := idx.LookupHashed(h.Hash(tuple.Tuple{Local: dst, Remote: src}), dst, src, 0)
			require.True(t, ok)
			require.Same(t, a, b)
			if dst.Addr == tuple.MustAddr("192.0.2.9") {
				require.Same(t, exact, a)
				continue
			}
			require.Contains(t, members, a)
			require.Equal(t, table.StateListen, a.Binding().State())
			require.Len(t, a.Members(), 3)
		}
	}
	_, err := table.NewListenerIndex[int](newPorts(t, table.PortsOptions{}), table.ListenerIndexOptions{Hasher: tuple.NewHasher()})
	require.ErrorIs(t, err, table.ErrInvalid, "an index whose hasher is not its Ports' would pick other members")
}

// When a member closes, Successor names the member that takes each of its
// queued connections over (Linux's reuseport_migrate_sock): one of the
// members still listening, chosen by the flow hash, spread over all of
// them; the last member to close has none.
func TestListenerSuccessor(t *testing.T) {
	ports, idx := newListeners(t)
	req := table.BindRequest{Family: 6, Addr: tuple.IPv6Unspecified(), Port: 443, ReusePort: true}
	var members []*table.Listener[int]
	for i := range 4 {
		members = append(members, listen(t, ports, idx, req, i))
	}
	closing := members[1]
	// Before Close it never names itself.
	for i := range 1000 {
		s, ok := closing.Successor(uint64(i) * 0x9e3779b97f4a7c15)
		require.True(t, ok)
		require.NotSame(t, closing, s)
	}
	require.NoError(t, closing.Close())
	require.Len(t, closing.Members(), 3, "after Close: the others")
	counts := map[*table.Listener[int]]int{}
	for i := range 3000 {
		s, ok := closing.Successor(uint64(i) * 0x9e3779b97f4a7c15)
		require.True(t, ok)
		require.Equal(t, table.StateListen, s.Binding().State())
		counts[s]++
	}
	require.Len(t, counts, 3, "every remaining member takes some")
	for _, m := range []*table.Listener[int]{members[0], members[2], members[3]} {
		require.InDelta(t, 1000, counts[m], 150)
	}
	for _, m := range []*table.Listener[int]{members[0], members[2]} {
		require.NoError(t, m.Close())
	}
	s, ok := closing.Successor(7)
	require.True(t, ok)
	require.Same(t, members[3], s)
	require.NoError(t, members[3].Close())
	_, ok = closing.Successor(7)
	require.False(t, ok, "no member left: its connections are reset")

	solo := listen(t, ports, idx, table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 8080}, 5)
	_, ok = solo.Successor(1)
	require.False(t, ok, "a listener in no group has no successor")
	require.Equal(t, []*table.Listener[int]{solo}, solo.Members())
	require.NoError(t, solo.Close())
	require.Empty(t, solo.Members())
}

// All yields every listener once, with the endpoint it listens on.
func TestListenerIndexAll(t *testing.T) {
	ports, idx := newListeners(t)
	want := map[*table.Listener[int]]tuple.Endpoint{}
	for i := range 2000 { // enough to grow the slot array
		ep := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{192, 0, 2, byte(i % 200)}), Port: uint16(1000 + i/200)}
		l := listen(t, ports, idx, table.BindRequest{Family: 4, Addr: ep.Addr, Port: ep.Port}, i)
		want[l] = ep
	}
	got := map[*table.Listener[int]]tuple.Endpoint{}
	for ep, l := range idx.All() {
		_, dup := got[l]
		require.False(t, dup)
		got[l] = ep
	}
	require.Equal(t, want, got)
}
