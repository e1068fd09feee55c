package fuzz

import (
	"testing"
	"time"

	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/tuple"
)

// syncookieJar is FuzzSynCookie's jar: one for the whole run, so a
// crasher replays against the same secrets within the process.
var syncookieJar = syncookie.NewJar()

// FuzzSynCookie checks the cookie codec on any flow, ISN, MSS and times:
// a cookie checks for its flow and ISN in its window with the MSS Cookie
// chose (one of the family's table), and not after it; Check of any
// cookie at any time never panics and returns a table MSS when it
// accepts; the timestamp options round-trip.
func FuzzSynCookie(f *testing.F) {
	f.Add(true, uint64(0xc0000201), uint64(0x0a000002), uint16(80), uint16(40000), uint32(1000), uint16(1460), int64(0), int64(30e9), uint32(12345), uint8(7))
	f.Add(false, uint64(0x20010db8<<32), uint64(1), uint16(443), uint16(5000), uint32(0xffffffff), uint16(9000), int64(255*60e9), int64(119e9), uint32(0), uint8(0xff))
	f.Fuzz(func(t *testing.T, v4 bool, la, ra uint64, lp, rp uint16, isn uint32, mss uint16, made, age int64, cookie uint32, opts uint8) {
		addr := func(w uint64) tuple.Addr {
			if v4 {
				return tuple.AddrFromWords(0, 0xffff<<32|w&0xffffffff)
			}
			return tuple.AddrFromWords(w|1<<62, ^w)
		}
		tp := tuple.Tuple{Local: tuple.Endpoint{Addr: addr(la), Port: lp}, Remote: tuple.Endpoint{Addr: addr(ra), Port: rp}}
		if made < 0 {
			made = -made
		}
		if made < 0 { // MinInt64
			made = 0
		}
		made %= 1 << 52
		tab := syncookie.MSSTable(tp)
		inTable := func(m uint16) bool { return m == tab[0] || m == tab[1] || m == tab[2] || m == tab[3] }

		c, enc := syncookieJar.Cookie(tp, isn, mss, time.Duration(made))
		if !inTable(enc) || (mss >= tab[0] && enc > mss) {
			t.Fatalf("mss %d encoded as %d (table %v)", mss, enc, tab)
		}
		start := time.Duration(made).Truncate(syncookie.Period)
		within := start + time.Duration(uint64(age)%uint64(2*syncookie.Period))
		if got, ok := syncookieJar.Check(tp, isn, c, within); !ok || got != enc {
			t.Fatalf("cookie made %v refused at %v (%d %v)", time.Duration(made), within, got, ok)
		}
		if _, ok := syncookieJar.Check(tp, isn, c, start+2*syncookie.Period); ok {
			t.Fatalf("cookie made %v accepted two minutes on", time.Duration(made))
		}
		if got, ok := syncookieJar.Check(tp, isn, cookie, time.Duration(made)); ok && !inTable(got) {
			t.Fatalf("accepted cookie with MSS %d outside the table", got)
		}

		o := syncookie.Options{HasWScale: opts&0xf != 0xf, WScale: min(opts&0xf, 14), SACK: opts&0x10 != 0, ECN: opts&0x20 != 0}
		if !o.HasWScale {
			o.WScale = 0
		}
		ts := syncookie.EncodeTS(cookie, o)
		if got := syncookie.DecodeTS(ts); got != o || cookie-ts >= 64 {
			t.Fatalf("options %+v at ts %d: TSval %d decodes to %+v", o, cookie, ts, got)
		}
	})
}
