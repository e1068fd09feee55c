package tuple_test

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/typeinfo"
	"github.com/socktable/socktable/tuple"
)

func TestKeysArePointerFreeAndCompact(t *testing.T) {
	for _, v := range []any{tuple.Addr{}, tuple.Endpoint{}, tuple.Tuple{}} {
		typ := reflect.TypeOf(v)
		require.Falsef(t, typeinfo.HasPointers(typ), "%v holds a pointer: a table of them would be scanned by the GC", typ)
		require.Truef(t, typ.Comparable(), "%v must be comparable", typ)
	}
	require.Equal(t, uintptr(16), unsafe.Sizeof(tuple.Addr{}))
	require.Equal(t, uintptr(24), unsafe.Sizeof(tuple.Endpoint{}))
	require.Equal(t, uintptr(48), unsafe.Sizeof(tuple.Tuple{}))
	// The helper must notice pointers, or the test above proves nothing.
	require.True(t, typeinfo.HasPointers(reflect.TypeOf(struct{ a [2]*int }{})))
	require.True(t, typeinfo.HasPointers(reflect.TypeOf(netip.Addr{})))
}

func TestAddrFromNetIP(t *testing.T) {
	tests := []struct {
		in      netip.Addr
		err     error
		is4     bool
		unspec  bool
		loop    bool
		str     string
		netipTo netip.Addr
	}{
		{in: netip.MustParseAddr("10.1.2.3"), is4: true, str: "10.1.2.3"},
		{in: netip.MustParseAddr("::ffff:10.1.2.3"), is4: true, str: "10.1.2.3", netipTo: netip.MustParseAddr("10.1.2.3")},
		{in: netip.MustParseAddr("0.0.0.0"), is4: true, unspec: true, str: "0.0.0.0"},
		{in: netip.MustParseAddr("::ffff:0.0.0.0"), is4: true, unspec: true, str: "0.0.0.0", netipTo: netip.MustParseAddr("0.0.0.0")},
		{in: netip.MustParseAddr("::"), unspec: true, str: "::"},
		{in: netip.MustParseAddr("127.0.0.53"), is4: true, loop: true, str: "127.0.0.53"},
		{in: netip.MustParseAddr("::1"), loop: true, str: "::1"},
		{in: netip.MustParseAddr("2001:db8::1"), str: "2001:db8::1"},
		{in: netip.Addr{}, err: tuple.ErrInvalidAddr},
		{in: netip.MustParseAddr("fe80::1%eth0"), err: tuple.ErrZone},
	}
	for _, tc := range tests {
		t.Run(tc.in.String(), func(t *testing.T) {
			a, err := tuple.AddrFromNetIP(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.is4, a.Is4())
			require.Equal(t, tc.unspec, a.IsUnspecified())
			require.Equal(t, tc.loop, a.IsLoopback())
			require.Equal(t, tc.str, a.String())
			want := tc.in
			if tc.netipTo.IsValid() {
				want = tc.netipTo
			}
			require.Equal(t, want, a.NetIP(), "IPv4 comes back unmapped")
			require.Equal(t, tc.in.As16(), a.As16())
			require.Equal(t, a, tuple.AddrFrom16(a.As16()))
			require.Equal(t, a, tuple.AddrFromWords(a.Words()))
			if a.Is4() {
				require.Equal(t, a, tuple.AddrFrom4(a.As4()))
			}
		})
	}
}

func TestV4AndV4MappedAreOneKey(t *testing.T) {
	a := tuple.MustAddr("192.0.2.7")
	b := tuple.MustAddr("::ffff:192.0.2.7")
	require.Equal(t, a, b)
	t1 := tuple.MustNew("192.0.2.7:80", "198.51.100.9:40000")
	t2 := tuple.MustNew("[::ffff:192.0.2.7]:80", "[::ffff:198.51.100.9]:40000")
	require.Equal(t, t1, t2)
	h := tuple.NewHasher()
	require.Equal(t, h.Hash(t1), h.Hash(t2))
	require.Equal(t, tuple.IPv4Unspecified(), tuple.MustAddr("0.0.0.0"))
	require.Equal(t, tuple.IPv6Unspecified(), tuple.MustAddr("::"))
	require.NotEqual(t, tuple.IPv4Unspecified(), tuple.IPv6Unspecified())
}

func TestNewValidates(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		local, remote netip.AddrPort
		err           error
	}{
		{"ok4", ap("10.0.0.1:80"), ap("10.0.0.2:1234"), nil},
		{"ok6", ap("[2001:db8::1]:443"), ap("[2001:db8::2]:50000"), nil},
		{"zero local port", ap("10.0.0.1:0"), ap("10.0.0.2:1234"), tuple.ErrPort},
		{"zero remote port", ap("10.0.0.1:80"), ap("10.0.0.2:0"), tuple.ErrPort},
		{"invalid", netip.AddrPort{}, ap("10.0.0.2:1234"), tuple.ErrInvalidAddr},
		{"zone", ap("[fe80::1%eth0]:80"), ap("[fe80::2]:1234"), tuple.ErrZone},
		{"wildcard local", ap("0.0.0.0:80"), ap("10.0.0.2:1234"), tuple.ErrInvalidAddr},
		{"wildcard remote v6", ap("[2001:db8::1]:80"), ap("[::]:1234"), tuple.ErrInvalidAddr},
		{"mixed families", ap("10.0.0.1:80"), ap("[2001:db8::2]:1234"), tuple.ErrInvalidAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := tuple.New(tc.local, tc.remote)
			if tc.err == nil {
				require.NoError(t, err)
				require.Equal(t, tc.local, tp.Local.AddrPort())
				require.Equal(t, tc.remote, tp.Remote.AddrPort())
				require.Equal(t, tc.local.Addr().Is4(), tp.Is4())
				require.Equal(t, tp, tp.Reverse().Reverse())
				require.Equal(t, tp.Local, tp.Reverse().Remote)
				return
			}
			require.True(t, errors.Is(err, tc.err), "got %v, want %v", err, tc.err)
		})
	}
}

func TestStrings(t *testing.T) {
	require.Equal(t, "local 10.0.0.1:80 remote 10.0.0.2:1234", tuple.MustNew("10.0.0.1:80", "10.0.0.2:1234").String())
	require.Equal(t, "[2001:db8::1]:443", tuple.MustEndpoint("[2001:db8::1]:443").String())
	require.Equal(t, "0.0.0.0:0", tuple.Endpoint{Addr: tuple.IPv4Unspecified()}.String())
	_, err := tuple.EndpointFromNetIP(netip.AddrPort{})
	require.ErrorIs(t, err, tuple.ErrInvalidAddr)
	require.Panics(t, func() { tuple.MustNew("10.0.0.1:0", "10.0.0.2:1") })
}
