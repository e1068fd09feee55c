package timewait

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// testOptions are TableOptions for the tests' tables, whose owners are
// ints (a flow's number, or a serial).
type testOptions = TableOptions[int]

// newTestTable returns a table on a manual clock at 0 with the given
// options.
func newTestTable(t testing.TB, opts testOptions) (*Table[int], *ManualClock) {
	t.Helper()
	clk := new(ManualClock)
	opts.Clock = clk
	tb, err := NewTable(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tb.Close() })
	return tb, clk
}

// flow returns a distinct IPv4 (or IPv6) four-tuple for each i.
func flow(i int, v6 bool) tuple.Tuple {
	if v6 {
		l := netip.MustParseAddr("2001:db8::1")
		r := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		tp, err := tuple.New(netip.AddrPortFrom(l, 443), netip.AddrPortFrom(r, uint16(1024+i%60000)))
		if err != nil {
			panic(err)
		}
		return tp
	}
	r := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	tp, err := tuple.New(netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(r, uint16(1024+i%60000)))
	if err != nil {
		panic(err)
	}
	return tp
}

func TestTableOptionsErrors(t *testing.T) {
	for _, o := range []testOptions{
		{Lifetime: -1}, {Lifetime: MaxLifetime + 1}, {FinWait2Timeout: -1}, {MaxBuckets: -1},
		{MaxBuckets: MaxMaxBuckets + 1}, {Shards: -1}, {Shards: 4097},
	} {
		_, err := NewTable(o)
		require.ErrorIs(t, err, ErrCapacity, "%+v", o)
	}
}

func TestTableEnterLookupExpire(t *testing.T) {
	expired := map[tuple.Tuple]int{}
	tb, clk := newTestTable(t, testOptions{OnExpire: func(tp tuple.Tuple, owner int) {
		_, dup := expired[tp]
		require.False(t, dup, "owner of %v handed out twice", tp)
		expired[tp] = owner
	}})
	a, b := flow(1, false), flow(2, true)
	clk.Set(time.Second)
	st := twState()
	st.TSRecentStamp = 500 * time.Millisecond
	require.NoError(t, tb.Enter(a, st, 1))
	require.NoError(t, tb.Enter(b, fw2State(), 2))
	require.ErrorIs(t, tb.Enter(a, st, 3), ErrExists)
	require.Equal(t, 2, tb.Len())

	got, ok := tb.Lookup(a)
	require.True(t, ok)
	require.Equal(t, st, got)
	_, ok = tb.Lookup(flow(3, false))
	require.False(t, ok)

	// The FIN_WAIT2 entry lives FinWait2Timeout (60 s), the TIME_WAIT one
	// 60 s, both never early: 60 s sits in level 4 (4.096 s granules).
	clk.Set(time.Second + TimeWaitLen - time.Millisecond)
	require.Zero(t, tb.Advance())
	require.Equal(t, 2, tb.Len())
	clk.Set(time.Second + TimeWaitLen + 4096*time.Millisecond)
	require.Equal(t, 2, tb.Advance())
	require.Zero(t, tb.Len())
	_, ok = tb.Lookup(a)
	require.False(t, ok)
	require.Equal(t, Stats{Expired: 2}, tb.Stats())
	require.Equal(t, map[tuple.Tuple]int{a: 1, b: 2}, expired, "each owner went to OnExpire once")
	clear(expired) // Close (at cleanup) hands out the next one
	// The slots are free again.
	require.NoError(t, tb.Enter(a, st, 4))
	require.Equal(t, 1, tb.Len())
}

func TestTableBadInput(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{})
	bad := flow(1, false)
	bad.Remote.Port = 0
	require.ErrorIs(t, tb.Enter(bad, twState(), 1), tuple.ErrPort)
	bad = flow(1, false)
	bad.Local.Addr = tuple.IPv4Unspecified()
	require.ErrorIs(t, tb.Enter(bad, twState(), 1), tuple.ErrInvalidAddr)
	require.NoError(t, tb.Enter(flow(1, false), twState(), 1))
	_, _, ok := tb.Process(flow(1, false), nil)
	require.False(t, ok, "a nil segment reaches no entry")
	require.NoError(t, tb.Close())
	require.ErrorIs(t, tb.Close(), ErrClosed)
	require.ErrorIs(t, tb.Enter(flow(1, false), twState(), 1), ErrClosed)
	_, ok = tb.Lookup(flow(1, false))
	require.False(t, ok)
}

func TestTableOverflow(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{MaxBuckets: 3})
	for i := range 3 {
		require.NoError(t, tb.Enter(flow(i, false), twState(), i))
	}
	err := tb.Enter(flow(3, false), twState(), 3)
	require.ErrorIs(t, err, ErrTimeWaitFull)
	require.True(t, errors.Is(err, ErrTimeWaitFull))
	require.Equal(t, uint64(1), tb.Stats().Overflows)
	owner, ok := tb.Kill(flow(0, false))
	require.True(t, ok)
	require.Zero(t, owner)
	require.NoError(t, tb.Enter(flow(3, false), twState(), 3))
	require.Equal(t, 3, tb.Len())
}

// Many entries, v4 and v6, through index growth, then removal in an order
// that exercises backward-shift deletion: every survivor stays findable.
func TestTableManyEntries(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{Shards: 2})
	const n = 5000
	for i := range n {
		require.NoError(t, tb.Enter(flow(i, i%2 == 1), twState(), i))
	}
	for i := 0; i < n; i += 3 {
		owner, ok := tb.Kill(flow(i, i%2 == 1))
		require.True(t, ok)
		require.Equal(t, i, owner)
	}
	for i := range n {
		_, ok := tb.Lookup(flow(i, i%2 == 1))
		require.Equal(t, i%3 != 0, ok, "entry %d", i)
	}
	require.Equal(t, n-(n+2)/3, tb.Len())
}

func TestTableProcess(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{})
	a := flow(1, false)
	clk.Set(ruleT0)
	require.NoError(t, tb.Enter(a, twState(), 7))

	// A bare ACK at rcv_nxt restarts the timer: the entry outlives its
	// first period.
	clk.Set(ruleT0 + 50*time.Second)
	s := seg(tuple.ACK, 1000, 0, 200)
	r, owner, ok := tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, VerdictDrop, r.Verdict)
	require.Equal(t, FateRestarted, r.Fate)
	require.Zero(t, owner, "a kept entry keeps its owner")
	clk.Set(ruleT0 + 70*time.Second)
	tb.Advance()
	st, ok := tb.Lookup(a)
	require.True(t, ok, "restarted entry expired early")
	require.Equal(t, uint32(200), st.TSRecent)
	require.Equal(t, ruleT0+50*time.Second, st.TSRecentStamp)

	// A retransmitted FIN is re-ACKed with the entry's fields.
	s = seg(tuple.FIN|tuple.ACK, 999, 0, 300)
	r, _, ok = tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, Reply{Verdict: VerdictACK, Fate: FateRestarted, Seq: 5000, Ack: 1000, Window: 65535,
		Timestamps: true, TSEcr: 200}, r)

	// A SYN with a higher sequence number may open a new connection.
	s = seg(tuple.SYN, 2000, 0, 400)
	r, _, ok = tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, Reply{Verdict: VerdictNewSYN, Fate: FateKept, ISN: 5000 + 65537, Seq: 5000, Ack: 1000,
		Window: 65535, Timestamps: true, TSEcr: 200}, r, "with the ACK to send if no listener takes it")
	require.Equal(t, 1, tb.Len(), "the stack calls Replace if a listener takes the SYN")

	// An in-window RST kills it, and the owner comes back with the reply.
	s = seg(tuple.RST, 1000, 0, 400)
	r, owner, ok = tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, VerdictDrop, r.Verdict)
	require.Equal(t, FateRemoved, r.Fate)
	require.Equal(t, 7, owner)
	_, ok = tb.Lookup(a)
	require.False(t, ok)
	require.Equal(t, uint64(1), tb.Stats().Killed)
	_, _, ok = tb.Process(a, &s)
	require.False(t, ok)
}

func TestTableRFC1337(t *testing.T) {
	tb, _ := newTestTable(t, testOptions{RFC1337: true})
	a := flow(1, false)
	require.NoError(t, tb.Enter(a, twState(), 1))
	s := seg(tuple.RST, 1000, 0, noTS)
	r, owner, ok := tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, Reply{Verdict: VerdictDrop, Fate: FateKept}, r)
	require.Zero(t, owner)
	_, ok = tb.Lookup(a)
	require.True(t, ok, "RFC 1337 ignores the RST")
}

// FIN_WAIT2: the peer's FIN moves the entry to TIME_WAIT with a fresh
// Lifetime; data gets an RST and kills it.
func TestTableFinWait2(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{FinWait2Timeout: 10 * time.Second, Lifetime: 30 * time.Second})
	a, b := flow(1, false), flow(2, false)
	clk.Set(ruleT0)
	require.NoError(t, tb.Enter(a, fw2State(), 1))
	require.NoError(t, tb.Enter(b, fw2State(), 2))

	clk.Set(ruleT0 + 5*time.Second)
	s := seg(tuple.FIN|tuple.ACK, 1000, 0, 200)
	r, _, ok := tb.Process(a, &s)
	require.True(t, ok)
	require.Equal(t, VerdictACK, r.Verdict)
	require.Equal(t, FateTimeWait, r.Fate)
	require.Equal(t, uint32(1001), r.Ack)
	st, _ := tb.Lookup(a)
	require.Equal(t, TimeWait, st.Substate)

	s = seg(tuple.PSH|tuple.ACK, 1000, 10, 200)
	r, owner, ok := tb.Process(b, &s)
	require.True(t, ok)
	require.Equal(t, VerdictRST, r.Verdict)
	require.Equal(t, FateRemoved, r.Fate)
	require.Equal(t, 2, owner)
	_, ok = tb.Lookup(b)
	require.False(t, ok)

	// a lives 30 s from its FIN, not 10 s from its entry.
	clk.Set(ruleT0 + 20*time.Second)
	tb.Advance()
	_, ok = tb.Lookup(a)
	require.True(t, ok)
	clk.Set(ruleT0 + 40*time.Second)
	tb.Advance()
	_, ok = tb.Lookup(a)
	require.False(t, ok)
}

func TestTableReuse(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{Reuse: ReuseLoopback})
	lo := tuple.MustNew("127.0.0.1:40000", "127.0.0.1:80")
	far := flow(1, false)
	clk.Set(ruleT0)
	require.NoError(t, tb.Enter(lo, twState(), 1))
	require.NoError(t, tb.Enter(far, twState(), 2))
	clk.Set(ruleT0 + ReuseDelay)
	_, ok := tb.Reusable(lo, false)
	require.False(t, ok, "not more than ReuseDelay old")
	clk.Advance(time.Millisecond)
	r, ok := tb.Reusable(lo, false)
	require.True(t, ok)
	require.Equal(t, Reuse{WriteSeq: 5000 + 65537, TSRecent: 100, TSRecentStamp: ruleT0}, r)
	_, ok = tb.Reusable(far, false)
	require.False(t, ok, "mode 2 is loopback only")
	_, ok = tb.Reusable(far, true)
	require.True(t, ok, "an explicitly bound port may reuse")

	r2, owner, ok := tb.TakeOver(lo, false)
	require.True(t, ok)
	require.Equal(t, r, r2)
	require.Equal(t, 1, owner)
	_, ok = tb.Lookup(lo)
	require.False(t, ok, "TakeOver removes the entry")
	_, _, ok = tb.TakeOver(lo, false)
	require.False(t, ok)
	_, owner, ok = tb.TakeOver(far, false)
	require.False(t, ok)
	require.Zero(t, owner, "a refused TakeOver keeps the owner")
	_, ok = tb.Lookup(far)
	require.True(t, ok, "a refused TakeOver leaves the entry")
	require.Same(t, clk, tb.Clock().(*ManualClock))
}

// Times stored in 32-bit milliseconds survive ages far beyond the rules'
// thresholds: a ts_recent recorded long ago is still "old" for PAWS.
func TestTableTimeEncoding(t *testing.T) {
	for _, c := range []struct{ ms, now int64 }{
		{0, 0}, {5, 10}, {1 << 33, 1<<33 + 7}, {0, 1 << 40}, {1 << 40, 1 << 40}, {100, 50},
	} {
		got := decodeTime(encodeTime(c.ms, c.now), c.now)
		want := min(c.ms, c.now)
		if c.now-want > maxAgeMS {
			want = c.now - maxAgeMS
		}
		require.Equal(t, want, got, fmt.Sprint(c))
	}
}

// The out-of-window ACK rate limit counts from the last such ACK, through
// the table's millisecond storage.
func TestTableOutOfWindowRateLimit(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{InvalidRateLimit: 20 * time.Millisecond})
	a := flow(1, false)
	clk.Set(ruleT0)
	require.NoError(t, tb.Enter(a, twState(), 1))
	old := seg(tuple.ACK, 999, 0, 150) // an old duplicate ACK: answered, rate-limited
	verdictAt := func(d time.Duration) Verdict {
		clk.Set(ruleT0 + d)
		r, _, ok := tb.Process(a, &old)
		require.True(t, ok)
		return r.Verdict
	}
	require.Equal(t, VerdictACK, verdictAt(5*time.Millisecond))
	require.Equal(t, VerdictDrop, verdictAt(24*time.Millisecond), "19 ms after the last ACK")
	require.Equal(t, VerdictACK, verdictAt(25*time.Millisecond), "20 ms after it")
	require.Equal(t, VerdictDrop, verdictAt(26*time.Millisecond))
}

// An entry's slot is 72 bytes and its timer's link 16: the memory budget
// in Table's doc. Both chunks are exact size classes.
func TestTableSlotSize(t *testing.T) {
	require.Equal(t, uintptr(72), unsafe.Sizeof(slot{}))
	require.Equal(t, 18432, int(unsafe.Sizeof([slotChunk]slot{})), "a chunk is one 18 KiB size class")
	require.Equal(t, slotChunk, linkChunk, "a slot chunk per link chunk")
}

// On a SystemClock the table's ticker expires entries on its own and
// hands their owners to OnExpire from its goroutine; the test waits for
// the hook, not for time.
func TestTableSystemClockExpires(t *testing.T) {
	for _, clock := range []Clock{nil, NewSystemClock()} {
		got := make(chan int, 1)
		tb, err := NewTable(testOptions{Clock: clock, Lifetime: 2 * time.Millisecond,
			OnExpire: func(_ tuple.Tuple, owner int) { got <- owner }})
		require.NoError(t, err)
		require.NoError(t, tb.Enter(flow(1, false), twState(), 9))
		require.Equal(t, 9, <-got)
		require.Zero(t, tb.Len())
		require.Equal(t, uint64(1), tb.Stats().Expired)
		require.Zero(t, tb.Stats().Timers)
		require.NoError(t, tb.Close())
	}
}

// Claim is TakeOver with the caller's insert in the same step: refused
// (ErrExists, install not run) where TakeOver would refuse; install's
// error leaves the entry; with no entry install runs alone.
func TestTableClaim(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{Reuse: ReuseLoopback})
	lo := tuple.MustNew("127.0.0.1:40000", "127.0.0.1:80")
	far := flow(1, false)
	clk.Set(ruleT0)
	require.NoError(t, tb.Enter(lo, twState(), 1))
	require.NoError(t, tb.Enter(far, twState(), 2))
	clk.Set(ruleT0 + ReuseDelay + time.Millisecond)
	installs := 0
	install := func() error { installs++; return nil }

	_, owner, taken, err := tb.Claim(far, false, install)
	require.ErrorIs(t, err, ErrExists, "mode 2 is loopback only")
	require.False(t, taken)
	require.Zero(t, owner)
	require.Zero(t, installs, "a refused claim inserts nothing")

	boom := errors.New("table full")
	_, _, taken, err = tb.Claim(lo, false, func() error { return boom })
	require.ErrorIs(t, err, boom)
	require.False(t, taken)
	_, ok := tb.Lookup(lo)
	require.True(t, ok, "a failed install leaves the entry")

	r, owner, taken, err := tb.Claim(lo, false, install)
	require.NoError(t, err)
	require.True(t, taken)
	require.Equal(t, 1, owner)
	require.Equal(t, Reuse{WriteSeq: 5000 + 65537, TSRecent: 100, TSRecentStamp: ruleT0}, r)
	require.Equal(t, 1, installs)
	_, ok = tb.Lookup(lo)
	require.False(t, ok, "the claim removed the entry")

	_, _, taken, err = tb.Claim(lo, false, install)
	require.NoError(t, err)
	require.False(t, taken, "no entry: install alone")
	require.Equal(t, 2, installs)

	_, _, taken, err = tb.Claim(far, true, install)
	require.NoError(t, err)
	require.True(t, taken, "an explicitly bound port may reuse")
}

// Entries reports each entry's expiry: TimeWaitLen after it entered,
// restarted by a retransmitted FIN (the ACK re-sent for it restarts the
// timer, as tcp_timewait_state_process does), and All agrees with it.
func TestTableEntriesExpiry(t *testing.T) {
	tb, clk := newTestTable(t, testOptions{})
	clk.Set(ruleT0)
	a, b := flow(1, false), flow(2, true)
	require.NoError(t, tb.Enter(a, twState(), 1))
	clk.Set(ruleT0 + 10*time.Second)
	require.NoError(t, tb.Enter(b, twState(), 2))
	want := map[tuple.Tuple]time.Duration{a: ruleT0 + TimeWaitLen, b: ruleT0 + 10*time.Second + TimeWaitLen}
	entries := func() map[tuple.Tuple]time.Duration {
		got := map[tuple.Tuple]time.Duration{}
		for e := range tb.Entries() {
			require.Equal(t, twState().RcvNxt, e.State.RcvNxt)
			got[e.Tuple] = e.Expires
		}
		n := 0
		for range tb.All() {
			n++
		}
		require.Equal(t, len(got), n)
		return got
	}
	require.Equal(t, want, entries())

	clk.Set(ruleT0 + 20*time.Second)
	fin := tuple.Segment{Tuple: a, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.FIN | tuple.ACK,
		Seq: twState().RcvNxt - 1, Ack: twState().SndNxt, HasTimestamps: true, TSval: 200}
	r, _, ok := tb.Process(a, &fin)
	require.True(t, ok)
	require.Equal(t, VerdictACK, r.Verdict)
	want[a] = ruleT0 + 20*time.Second + TimeWaitLen
	require.Equal(t, want, entries())

	clk.Set(ruleT0 + TimeWaitLen + 15*time.Second)
	tb.Advance()
	require.Equal(t, map[tuple.Tuple]time.Duration{a: want[a]}, entries(), "b expired, a was restarted")
}
