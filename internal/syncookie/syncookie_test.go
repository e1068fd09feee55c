package syncookie_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/tuple"
)

var (
	flow4 = tuple.MustNew("192.0.2.1:80", "10.0.0.2:40000")
	flow6 = tuple.MustNew("[2001:db8::1]:443", "[2001:db8::2]:5000")
)

// The MSS a cookie encodes is the largest of Linux's table not above the
// peer's (or the smallest), per family, and Check returns it.
func TestCookieMSSTable(t *testing.T) {
	j := syncookie.NewJar()
	for _, c := range []struct {
		t         tuple.Tuple
		mss, want uint16
	}{
		{flow4, 0, 536}, {flow4, 536, 536}, {flow4, 1299, 536}, {flow4, 1300, 1300}, {flow4, 1452, 1440},
		{flow4, 1460, 1460}, {flow4, 9000, 1460},
		{flow6, 1220, 1220}, {flow6, 1419, 1220}, {flow6, 1420, 1420}, {flow6, 1440, 1440},
		{flow6, 8939, 1440}, {flow6, 8940, 8940}, {flow6, 65535, 8940},
	} {
		cookie, got := j.Cookie(c.t, 12345, c.mss, time.Hour)
		require.Equal(t, c.want, got, "%v mss %d", c.t, c.mss)
		mss, ok := j.Check(c.t, 12345, cookie, time.Hour)
		require.True(t, ok)
		require.Equal(t, c.want, mss)
	}
}

// A cookie is valid in the minute it was made and the next, never before
// it and not from the second minute after it (MAX_SYNCOOKIE_AGE 2), and
// the minute count wraps at 256 like Linux's 8 bits.
func TestCookieWindow(t *testing.T) {
	j := syncookie.NewJar()
	for _, made := range []time.Duration{0, 59 * time.Second, 255 * time.Minute, 255*time.Minute + 59*time.Second, 1000 * time.Hour} {
		cookie, _ := j.Cookie(flow4, 7, 1460, made)
		start := made.Truncate(syncookie.Period)
		for _, c := range []struct {
			at time.Duration
			ok bool
		}{
			{start, true}, {made, true}, {start + syncookie.Period - 1, true}, {start + 2*syncookie.Period - 1, true},
			{start + 2*syncookie.Period, false}, {start + 3*syncookie.Period, false},
			{start - 1, start == 0}, // before it was made: a count ahead, too old mod 256 (at 0 there is no earlier minute)
		} {
			if c.at < 0 {
				continue
			}
			_, ok := j.Check(flow4, 7, cookie, c.at)
			require.Equal(t, c.ok, ok, "made %v, checked %v", made, c.at)
		}
	}
}

// Each input of a cookie is covered: another tuple (any field), peer ISN,
// jar, or the cookie's bits above the MSS index make it invalid — except
// the ~2^-22 chance of a 24-bit MAC, which over many trials must stay
// near zero. A change in bits 2-23 is always refused (the data falls
// outside the table); the low two bits are the MSS index, as in Linux
// (and since the peer's ISN is added, not hashed, isn+1 is the cookie of
// the next smaller MSS: Linux's cookies share that).
func TestCookieForgery(t *testing.T) {
	j, other := syncookie.NewJar(), syncookie.NewJar()
	const now = 90 * time.Minute
	accepted, trials := 0, 0
	try := func(tp tuple.Tuple, isn, cookie uint32, jar *syncookie.Jar) {
		trials++
		if _, ok := jar.Check(tp, isn, cookie, now); ok {
			accepted++
		}
	}
	for i := range 2000 {
		tp := flow4
		if i%2 == 1 {
			tp = flow6
		}
		tp.Remote.Port = uint16(i)
		isn := uint32(i) * 2654435761
		cookie, _ := j.Cookie(tp, isn, 1460, now)
		for bit := 2; bit < 24; bit++ {
			_, ok := j.Check(tp, isn, cookie^1<<bit, now)
			require.False(t, ok, "bit %d", bit)
		}
		moved := tp
		moved.Remote.Port++
		try(moved, isn, cookie, j)
		moved = tp
		moved.Local.Port++
		try(moved, isn, cookie, j)
		moved = tp
		moved.Remote.Addr = tuple.MustAddr(map[bool]string{true: "10.0.0.3", false: "2001:db8::3"}[tp.Is4()])
		try(moved, isn, cookie, j)
		try(tp, isn^0x5a5a0000, cookie, j)
		try(tp, isn, cookie, other)
		for bit := 24; bit < 32; bit++ {
			try(tp, isn, cookie^1<<bit, j)
		}
	}
	require.LessOrEqual(t, accepted, 3, "%d of %d forgeries accepted", accepted, trials)
}

// Random inputs: a cookie always checks for its own flow and ISN within
// its window, and returns the MSS Cookie chose.
func TestCookieRoundTrip(t *testing.T) {
	j := syncookie.NewJar()
	rapid.Check(t, func(rt *rapid.T) {
		v4 := rapid.Bool().Draw(rt, "v4")
		var tp tuple.Tuple
		if v4 {
			tp = tuple.Tuple{Local: tuple.Endpoint{Addr: tuple.AddrFromWords(0, 0xffff<<32|uint64(rapid.Uint32().Draw(rt, "l"))), Port: rapid.Uint16().Draw(rt, "lp")},
				Remote: tuple.Endpoint{Addr: tuple.AddrFromWords(0, 0xffff<<32|uint64(rapid.Uint32().Draw(rt, "r"))), Port: rapid.Uint16().Draw(rt, "rp")}}
		} else {
			tp = tuple.Tuple{Local: tuple.Endpoint{Addr: tuple.AddrFromWords(1|rapid.Uint64().Draw(rt, "lh"), rapid.Uint64().Draw(rt, "ll")), Port: rapid.Uint16().Draw(rt, "lp")},
				Remote: tuple.Endpoint{Addr: tuple.AddrFromWords(1|rapid.Uint64().Draw(rt, "rh"), rapid.Uint64().Draw(rt, "rl")), Port: rapid.Uint16().Draw(rt, "rp")}}
		}
		isn := rapid.Uint32().Draw(rt, "isn")
		mss := rapid.Uint16().Draw(rt, "mss")
		made := time.Duration(rapid.Int64Range(0, 1<<50).Draw(rt, "made"))
		age := time.Duration(rapid.Int64Range(0, int64(2*syncookie.Period)-1).Draw(rt, "age"))
		cookie, enc := j.Cookie(tp, isn, mss, made)
		at := made.Truncate(syncookie.Period) + age
		got, ok := j.Check(tp, isn, cookie, at)
		if !ok || got != enc {
			rt.Fatalf("cookie for %v made %v, checked %v: %d %v, want %d", tp, made, at, got, ok, enc)
		}
	})
}

// The options survive the timestamp's low bits for every window scale,
// with and without SACK and ECN; the TSval never runs ahead of the clock
// and stays within one 64-tick period of it.
func TestTimestampOptions(t *testing.T) {
	var all []syncookie.Options
	for ws := -1; ws <= 14; ws++ {
		for _, sack := range []bool{false, true} {
			for _, ecn := range []bool{false, true} {
				o := syncookie.Options{SACK: sack, ECN: ecn}
				if ws >= 0 {
					o.HasWScale, o.WScale = true, uint8(ws)
				}
				all = append(all, o)
			}
		}
	}
	for _, ts := range []uint32{0, 1, 63, 64, 1000, 1 << 31, 0xffffffff} {
		for _, o := range all {
			v := syncookie.EncodeTS(ts, o)
			require.Equal(t, o, syncookie.DecodeTS(v), "ts %d %+v", ts, o)
			require.Less(t, ts-v, uint32(64), "ts %d -> %d", ts, v) // mod 2^32: at most one period behind
		}
	}
	require.Equal(t, syncookie.Options{HasWScale: true, WScale: 14}, syncookie.DecodeTS(syncookie.EncodeTS(5000, syncookie.Options{HasWScale: true, WScale: 15})),
		"a shift above 14 is sent as 14")
}

// ISN grows with the clock at 1 per 64 ns (RFC 6528's timer) from a
// per-tuple offset; TSOffset depends on the address pair alone.
func TestISNAndTSOffset(t *testing.T) {
	j := syncookie.NewJar()
	base := j.ISN(flow4, 0)
	require.Equal(t, base+1000, j.ISN(flow4, 64000))
	other := flow4
	other.Remote.Port++
	require.NotEqual(t, base, j.ISN(other, 0), "another tuple, another offset")
	require.Equal(t, j.TSOffset(flow4), j.TSOffset(other), "one offset per host pair")
	third := flow4
	third.Remote.Addr = tuple.MustAddr("10.0.0.9")
	require.NotEqual(t, j.TSOffset(flow4), j.TSOffset(third))
	require.NotEqual(t, j.ISN(flow4, 0), syncookie.NewJar().ISN(flow4, 0), "per-jar secrets")
}

func ExampleJar() {
	j := syncookie.NewJar()
	flow := tuple.MustNew("192.0.2.1:80", "10.0.0.2:40000")
	now := 10 * time.Minute
	cookie, mss := j.Cookie(flow, 1000, 1452, now) // the SYN: ISN 1000, MSS 1452
	got, ok := j.Check(flow, 1000, cookie, now+time.Minute)
	fmt.Println(mss, got, ok)
	_, ok = j.Check(flow, 1000, cookie, now+2*time.Minute)
	fmt.Println(ok)
	// Output:
	// 1440 1440 true
	// false
}
