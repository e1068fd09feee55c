package timewait

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

// The times the rule tests start from, on the table's clock.
const (
	ruleT0   = 1000 * time.Second
	ruleStep = time.Second
	ruleTick = time.Millisecond
)

var ruleTuple = tuple.Tuple{
	Local:  tuple.MustEndpoint("10.0.0.1:80"),
	Remote: tuple.MustEndpoint("10.0.0.2:40000"),
}

// twState is a TIME_WAIT hand-over: rcv_nxt 1000, snd_nxt 5000, ts_recent
// 100 recorded at ruleT0.
func twState() State {
	return State{
		Substate: TimeWait, RcvNxt: 1000, SndNxt: 5000, RcvWnd: 65535,
		HasTimestamps: true, TSRecent: 100, TSRecentStamp: ruleT0,
	}
}

// fw2State is the same connection as an orphaned FIN_WAIT2 with a 4000-byte
// window.
func fw2State() State {
	s := twState()
	s.Substate = FinWait2
	s.RcvWnd = 4000
	return s
}

// seg builds a TCP segment of the test flow; ts > 0 adds a timestamp
// option with TSval ts (use tsZero for a TSval of 0).
func seg(flags tuple.Flags, seq uint32, payload uint16, ts int64) tuple.Segment {
	s := tuple.Segment{
		Tuple: ruleTuple, Proto: tuple.ProtoTCP, Version: 4,
		Flags: flags, Seq: seq, Ack: 5000, PayloadLen: payload, Window: 1000,
	}
	if ts >= 0 {
		s.HasTimestamps = true
		s.TSval = uint32(ts)
	}
	return s
}

// noTS asks seg for a segment without timestamps.
const noTS = -1

type ruleCase struct {
	name   string
	kernel string // the behaviour of tcp_timewait_state_process checked
	state  State
	seg    tuple.Segment
	rules  Rules
	now    time.Duration // 0 means ruleT0 + 1 s
	v      Verdict
	act    action
	isn    uint32
	check  func(t *testing.T, r *record) // the record after processing
}

func (c *ruleCase) run(t *testing.T) {
	now := c.now
	if now == 0 {
		now = ruleT0 + ruleStep
	}
	r := newRecord(&c.state, ruleT0)
	v, act, isn := r.process(&c.seg, now, &c.rules)
	require.Equal(t, c.v, v, "verdict (%s)", c.kernel)
	require.Equal(t, c.act, act, "timer action (%s)", c.kernel)
	require.Equal(t, c.isn, isn, "isn (%s)", c.kernel)
	if c.check != nil {
		c.check(t, &r)
	}
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for i := range cases {
		t.Run(cases[i].name, cases[i].run)
	}
}

// tsRecentIs checks ts_recent and its stamp after processing.
func tsRecentIs(ts uint32, stamp time.Duration) func(*testing.T, *record) {
	return func(t *testing.T, r *record) {
		require.Equal(t, ts, r.tsRecent, "ts_recent")
		require.Equal(t, stamp, r.tsRecentStamp, "ts_recent_stamp")
	}
}

var unchangedTS = tsRecentIs(100, ruleT0)

func TestTimeWaitInWindow(t *testing.T) {
	now := ruleT0 + ruleStep
	runRuleCases(t, []ruleCase{{
		name:   "bare ACK at rcv_nxt restarts and updates ts_recent",
		kernel: "seq == rcv_nxt && seq == end_seq: inet_twsk_reschedule, tw_ts_recent = rcv_tsval, TCP_TW_SUCCESS",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 150),
		v: VerdictDrop, act: restartTimer, check: tsRecentIs(150, now),
	}, {
		name:   "bare ACK at rcv_nxt without timestamp restarts, ts_recent kept",
		kernel: "saw_tstamp false: ts_recent untouched",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, noTS),
		v: VerdictDrop, act: restartTimer, check: unchangedTS,
	}, {
		name:   "bare ACK with equal timestamp is not a PAWS reject",
		kernel: "tcp_paws_check: (s32)(ts_recent - tsval) <= 0 passes",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 100),
		v: VerdictDrop, act: restartTimer, check: tsRecentIs(100, now),
	}, {
		name:   "in-window RST kills the entry (tcp_rfc1337=0)",
		kernel: "th->rst && sysctl_tcp_rfc1337 == 0: inet_twsk_deschedule_put",
		state:  twState(), seg: seg(tuple.RST, 1000, 0, 150),
		v: VerdictDrop, act: killEntry,
	}, {
		name:   "in-window RST|ACK kills the entry too",
		kernel: "only seq == rcv_nxt and rst are tested, ACK does not matter",
		state:  twState(), seg: seg(tuple.RST|tuple.ACK, 1000, 0, noTS),
		v: VerdictDrop, act: killEntry,
	}, {
		name:   "in-window RST ignored with tcp_rfc1337=1, timer kept, timestamp recorded",
		kernel: "rfc1337: no kill, no reschedule (else branch), ts_recent updated",
		state:  twState(), seg: seg(tuple.RST, 1000, 0, 150), rules: Rules{RFC1337: true},
		v: VerdictDrop, act: keepTimer, check: tsRecentIs(150, now),
	}, {
		name:   "RST after rcv_nxt is dropped",
		kernel: "out-of-window RST: !th->rst is false, TCP_TW_SUCCESS without reschedule",
		state:  twState(), seg: seg(tuple.RST, 1001, 0, 150),
		v: VerdictDrop, act: keepTimer, check: unchangedTS,
	}, {
		name:   "RST before rcv_nxt is dropped",
		kernel: "out-of-window RST dropped",
		state:  twState(), seg: seg(tuple.RST|tuple.ACK, 999, 0, noTS), rules: Rules{RFC1337: true},
		v: VerdictDrop, act: keepTimer,
	}, {
		name:   "RST at rcv_nxt wrapped around 2^32",
		kernel: "seq == rcv_nxt compares exact 32-bit values",
		state:  func() State { s := twState(); s.RcvNxt = 0; return s }(),
		seg:    seg(tuple.RST, 0, 0, noTS),
		v:      VerdictDrop, act: killEntry,
	}})
}

func TestTimeWaitOutOfWindow(t *testing.T) {
	runRuleCases(t, []ruleCase{{
		name:   "retransmitted FIN is re-ACKed and restarts the timer",
		kernel: "FIN|ACK at rcv_nxt-1: not in window, ack set: reschedule, TCP_TW_ACK",
		state:  twState(), seg: seg(tuple.FIN|tuple.ACK, 999, 0, 150),
		v: VerdictACK, act: restartTimer, check: unchangedTS,
	}, {
		name:   "retransmitted FIN with its data tail",
		kernel: "data + FIN ending at rcv_nxt: re-ACK, restart",
		state:  twState(), seg: seg(tuple.FIN|tuple.ACK|tuple.PSH, 899, 100, noTS),
		v: VerdictACK, act: restartTimer,
	}, {
		name:   "old ACK-less SYN is ACKed without restarting the timer",
		kernel: "SYN below rcv_nxt, no newer timestamp: !(paws_reject || th->ack): no reschedule, TCP_TW_ACK",
		state:  twState(), seg: seg(tuple.SYN, 500, 0, 100),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "SYN at rcv_nxt is not after it: ACK, no restart",
		kernel: "after(seq, rcv_nxt) is strict",
		state:  twState(), seg: seg(tuple.SYN, 1000, 0, noTS),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "data at rcv_nxt is ACKed and restarts",
		kernel: "seq == rcv_nxt but seq != end_seq: not the in-window branch; ack set",
		state:  twState(), seg: seg(tuple.ACK|tuple.PSH, 1000, 10, 150),
		v: VerdictACK, act: restartTimer, check: unchangedTS,
	}, {
		name:   "ACK-less data is ACKed without restart",
		kernel: "neither paws_reject nor th->ack",
		state:  twState(), seg: seg(tuple.PSH, 1000, 10, noTS),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "bare ACK with an old timestamp is PAWS-rejected: ACK and restart",
		kernel: "tcp_paws_reject: paws_reject forces reschedule and the ACK path; ts_recent kept",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 99),
		v: VerdictACK, act: restartTimer, check: unchangedTS,
	}, {
		name:   "timestamp older across the 32-bit wrap is PAWS-rejected",
		kernel: "(s32)(ts_recent - tsval) > 0 with ts_recent 5, tsval 0xfffffff0",
		state:  func() State { s := twState(); s.TSRecent = 5; return s }(),
		seg:    seg(tuple.ACK, 1000, 0, 0xfffffff0),
		v:      VerdictACK, act: restartTimer, check: tsRecentIs(5, ruleT0),
	}, {
		name:   "ACK-less old SYN rejected by PAWS still restarts",
		kernel: "paws_reject || th->ack: reschedule",
		state:  twState(), seg: seg(tuple.SYN, 500, 0, 50),
		v: VerdictACK, act: restartTimer,
	}})
}

func TestTimeWaitNewSYN(t *testing.T) {
	runRuleCases(t, []ruleCase{{
		name:   "SYN with a higher sequence number opens a new connection",
		kernel: "after(seq, rcv_nxt): TCP_TW_SYN, tcp_tw_isn = tw_snd_nxt + 65535 + 2",
		state:  twState(), seg: seg(tuple.SYN, 1001, 0, noTS),
		v: VerdictNewSYN, act: keepTimer, isn: 5000 + 65537, check: unchangedTS,
	}, {
		name:   "SYN after rcv_nxt across the 2^32 wrap",
		kernel: "after() is serial arithmetic: 0x10 is after 0xfffffff0",
		state:  func() State { s := twState(); s.RcvNxt = 0xfffffff0; return s }(),
		seg:    seg(tuple.SYN, 0x10, 0, noTS),
		v:      VerdictNewSYN, act: keepTimer, isn: 5000 + 65537,
	}, {
		name:   "SYN numerically larger but before rcv_nxt across the wrap is old",
		kernel: "0xfffffff0 is before 0x10: ACK, no restart",
		state:  func() State { s := twState(); s.RcvNxt = 0x10; return s }(),
		seg:    seg(tuple.SYN, 0xfffffff0, 0, noTS),
		v:      VerdictACK, act: keepTimer,
	}, {
		name:   "SYN with a lower sequence number but a newer timestamp (RFC 6191)",
		kernel: "saw_tstamp && (s32)(ts_recent - tsval) < 0: TCP_TW_SYN",
		state:  twState(), seg: seg(tuple.SYN, 10, 0, 101),
		v: VerdictNewSYN, act: keepTimer, isn: 5000 + 65537, check: unchangedTS,
	}, {
		name:   "newer timestamp counts only if the entry has timestamps",
		kernel: "options are parsed only when tw_ts_recent_stamp != 0",
		state:  func() State { s := twState(); s.HasTimestamps = false; return s }(),
		seg:    seg(tuple.SYN, 10, 0, 101),
		v:      VerdictACK, act: keepTimer,
	}, {
		name:   "SYN|ACK is never a new connection",
		kernel: "th->syn && !th->ack required; ACK set: reschedule and ACK",
		state:  twState(), seg: seg(tuple.SYN|tuple.ACK, 2000, 0, noTS),
		v: VerdictACK, act: restartTimer,
	}, {
		name:   "SYN|RST is never a new connection",
		kernel: "!th->rst required; then the RST is dropped",
		state:  twState(), seg: seg(tuple.SYN|tuple.RST, 2000, 0, noTS),
		v: VerdictDrop, act: keepTimer,
	}, {
		name:   "SYN with higher sequence but PAWS-rejected timestamp",
		kernel: "!paws_reject required; paws_reject reschedules and ACKs",
		state:  twState(), seg: seg(tuple.SYN, 2000, 0, 99),
		v: VerdictACK, act: restartTimer,
	}, {
		name:   "ISN that would be 0 becomes 1",
		kernel: "if (isn == 0) isn++",
		state:  func() State { s := twState(); s.SndNxt = 1<<32 - 65537; return s }(),
		seg:    seg(tuple.SYN, 2000, 0, noTS),
		v:      VerdictNewSYN, act: keepTimer, isn: 1,
	}, {
		name:   "ISN wraps around 2^32",
		kernel: "u32 arithmetic: 0xffffff00 + 65537",
		state:  func() State { s := twState(); s.SndNxt = 0xffffff00; return s }(),
		seg:    seg(tuple.SYN, 2000, 0, noTS),
		v:      VerdictNewSYN, act: keepTimer, isn: 0xffffff00 + 65537 - 1<<32,
	}, {
		name:   "SYN carrying data with a higher sequence number is accepted too",
		kernel: "payload plays no part in the TCP_TW_SYN test",
		state:  twState(), seg: seg(tuple.SYN, 3000, 100, noTS),
		v: VerdictNewSYN, act: keepTimer, isn: 5000 + 65537,
	}})
}

func TestTimeWaitPAWSExceptions(t *testing.T) {
	const wrap, msl = 2147 * time.Second, 60 * time.Second
	runRuleCases(t, []ruleCase{{
		name:   "ts_recent older than TCP_PAWS_WRAP no longer rejects",
		kernel: "!time_before32(now, ts_recent_stamp + TCP_PAWS_WRAP): paws passes, old tsval becomes ts_recent",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 50), now: ruleT0 + wrap,
		v: VerdictDrop, act: restartTimer, check: tsRecentIs(50, ruleT0+wrap),
	}, {
		name:   "just under TCP_PAWS_WRAP the old timestamp is rejected",
		kernel: "time_before32 still true",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 50), now: ruleT0 + wrap - 1,
		v: VerdictACK, act: restartTimer, check: unchangedTS,
	}, {
		name:   "ts_recent 0 never rejects",
		kernel: "if (!rx_opt->ts_recent) return true",
		state:  func() State { s := twState(); s.TSRecent = 0; return s }(),
		seg:    seg(tuple.ACK, 1000, 0, 0x80000001),
		v:      VerdictDrop, act: restartTimer, check: tsRecentIs(0x80000001, ruleT0+ruleStep),
	}, {
		name:   "RST with an old timestamp passes PAWS once ts_recent is TCP_PAWS_MSL old",
		kernel: "tcp_paws_reject(rst): !time_before32(now, stamp + TCP_PAWS_MSL) -> false; in-window RST kills",
		state:  twState(), seg: seg(tuple.RST, 1000, 0, 50), now: ruleT0 + msl,
		v: VerdictDrop, act: killEntry,
	}, {
		name:   "RST with an old timestamp is PAWS-rejected before TCP_PAWS_MSL",
		kernel: "paws_reject: not the in-window branch; RST dropped",
		state:  twState(), seg: seg(tuple.RST, 1000, 0, 50), now: ruleT0 + msl - 1,
		v: VerdictDrop, act: keepTimer,
	}, {
		name:   "the RST exception does not apply to other segments",
		kernel: "rst false: paws_reject stands",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 50), now: ruleT0 + msl,
		v: VerdictACK, act: restartTimer,
	}, {
		name:   "a clock that stepped back counts as no time elapsed",
		kernel: "time_before32 is a signed difference",
		state:  twState(), seg: seg(tuple.ACK, 1000, 0, 50), now: ruleT0 - wrap,
		v: VerdictACK, act: restartTimer,
	}, {
		name:   "entry without timestamps ignores the segment's",
		kernel: "tw_ts_recent_stamp == 0: no option parsing, no PAWS",
		state:  func() State { s := twState(); s.HasTimestamps = false; return s }(),
		seg:    seg(tuple.ACK, 1000, 0, 50),
		v:      VerdictDrop, act: restartTimer, check: tsRecentIs(0, 0),
	}})
}

func TestFinWait2(t *testing.T) {
	now := ruleT0 + ruleStep
	runRuleCases(t, []ruleCase{{
		name:   "FIN at rcv_nxt enters TIME_WAIT with a fresh timer",
		kernel: "FIN, end_seq == rcv_nxt + 1: tw_substate = TCP_TIME_WAIT, rcv_nxt = end_seq, reschedule TCP_TIMEWAIT_LEN, TCP_TW_ACK",
		state:  fw2State(), seg: seg(tuple.FIN|tuple.ACK, 1000, 0, 150),
		v: VerdictACK, act: restartTimer,
		check: func(t *testing.T, r *record) {
			require.Equal(t, TimeWait, r.substate)
			require.Equal(t, uint32(1001), r.rcvNxt)
			require.Equal(t, uint32(150), r.tsRecent)
			require.Equal(t, now, r.tsRecentStamp)
			require.Equal(t, now, r.entryStamp, "tw_entry_stamp refreshed")
		},
	}, {
		name:   "FIN without timestamp keeps ts_recent and the entry time",
		kernel: "saw_tstamp false: tw_entry_stamp and ts_recent untouched",
		state:  fw2State(), seg: seg(tuple.FIN|tuple.ACK, 1000, 0, noTS),
		v: VerdictACK, act: restartTimer,
		check: func(t *testing.T, r *record) {
			require.Equal(t, TimeWait, r.substate)
			require.Equal(t, uint32(1001), r.rcvNxt)
			require.Equal(t, ruleT0, r.entryStamp)
			unchangedTS(t, r)
		},
	}, {
		name:   "FIN at rcv_nxt = 2^32-1 wraps rcv_nxt to 0",
		kernel: "end_seq == rcv_nxt + 1 in u32",
		state:  func() State { s := fw2State(); s.RcvNxt = 0xffffffff; return s }(),
		seg:    seg(tuple.FIN|tuple.ACK, 0xffffffff, 0, noTS),
		v:      VerdictACK, act: restartTimer,
		check: func(t *testing.T, r *record) { require.Zero(t, r.rcvNxt) },
	}, {
		name:   "SYN in the window gets a reset",
		kernel: "th->syn && !before(seq, rcv_nxt): TCP_TW_RST (tcp_v4_rcv deschedules)",
		state:  fw2State(), seg: seg(tuple.SYN, 1000, 0, noTS),
		v: VerdictRST, act: killEntry,
	}, {
		name:   "SYN later in the window gets a reset",
		kernel: "tcp_in_window, then !before(seq, rcv_nxt)",
		state:  fw2State(), seg: seg(tuple.SYN, 1500, 0, 150),
		v: VerdictRST, act: killEntry,
	}, {
		name:   "new data gets a reset",
		kernel: "ACK, end_seq after rcv_nxt, !th->fin: TCP_TW_RST",
		state:  fw2State(), seg: seg(tuple.ACK|tuple.PSH, 1000, 100, 150),
		v: VerdictRST, act: killEntry,
	}, {
		name:   "data with FIN gets a reset",
		kernel: "end_seq != rcv_nxt + 1",
		state:  fw2State(), seg: seg(tuple.FIN|tuple.ACK, 1000, 100, noTS),
		v: VerdictRST, act: killEntry,
	}, {
		name:   "data across the 2^32 wrap is in the window",
		kernel: "tcp_in_window with rcv_nxt + rcv_wnd wrapping",
		state:  func() State { s := fw2State(); s.RcvNxt = 0xffffff00; return s }(),
		seg:    seg(tuple.ACK, 0x80, 10, noTS),
		v:      VerdictRST, act: killEntry,
	}, {
		name:   "RST in the window kills the entry even with tcp_rfc1337=1",
		kernel: "th->rst: goto kill (RFC 1337 applies to true TIME_WAIT only)",
		state:  fw2State(), seg: seg(tuple.RST, 1200, 0, noTS), rules: Rules{RFC1337: true},
		v: VerdictDrop, act: killEntry,
	}, {
		name:   "duplicate ACK is dropped",
		kernel: "!after(end_seq, rcv_nxt): TCP_TW_SUCCESS",
		state:  fw2State(), seg: seg(tuple.ACK, 1000, 0, 150),
		v: VerdictDrop, act: keepTimer, check: unchangedTS,
	}, {
		name:   "FIN without ACK is dropped",
		kernel: "!th->ack: TCP_TW_SUCCESS",
		state:  fw2State(), seg: seg(tuple.FIN, 1000, 0, noTS),
		v: VerdictDrop, act: keepTimer,
		check: func(t *testing.T, r *record) { require.Equal(t, FinWait2, r.substate) },
	}, {
		name:   "segment beyond the window is ACKed",
		kernel: "!tcp_in_window: tcp_timewait_check_oow_rate_limit -> TCP_TW_ACK",
		state:  fw2State(), seg: seg(tuple.ACK, 1000+4000+1, 0, noTS),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "empty segment at the window's right edge is in the window",
		kernel: "tcp_in_window: seq == e_win && seq == end_seq; then a dup ACK, dropped",
		state:  fw2State(), seg: seg(tuple.ACK, 1000+4000, 0, noTS),
		v: VerdictDrop, act: keepTimer,
	}, {
		name:   "RST outside the window is ACKed",
		kernel: "the window check comes before the RST check",
		state:  fw2State(), seg: seg(tuple.RST, 999, 0, noTS),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "SYN just before rcv_nxt is outside the window: ACK",
		kernel: "end_seq == rcv_nxt is not after s_win",
		state:  fw2State(), seg: seg(tuple.SYN, 999, 0, noTS),
		v: VerdictACK, act: keepTimer,
	}, {
		name:   "PAWS-rejected FIN is ACKed and changes nothing",
		kernel: "paws_reject: the out-of-window ACK path",
		state:  fw2State(), seg: seg(tuple.FIN|tuple.ACK, 1000, 0, 99),
		v: VerdictACK, act: keepTimer,
		check: func(t *testing.T, r *record) {
			require.Equal(t, FinWait2, r.substate)
			require.Equal(t, uint32(1000), r.rcvNxt)
		},
	}, {
		name:   "zero window still accepts a segment at rcv_nxt",
		kernel: "tcp_in_window: seq == s_win",
		state:  func() State { s := fw2State(); s.RcvWnd = 0; return s }(),
		seg:    seg(tuple.FIN|tuple.ACK, 1000, 0, noTS),
		v:      VerdictACK, act: restartTimer,
	}})
}

// An out-of-window ACK goes out at most once per InvalidRateLimit; the
// timer restarts regardless, and data segments are never limited.
func TestOutOfWindowACKRateLimit(t *testing.T) {
	rules := DefaultRules()
	r := newRecord(new(twState()), ruleT0)
	old := seg(tuple.ACK, 900, 0, noTS)
	step := func(s tuple.Segment, now time.Duration, v Verdict, act action) {
		t.Helper()
		gotV, gotAct, _ := r.process(&s, now, &rules)
		require.Equal(t, v, gotV)
		require.Equal(t, act, gotAct)
	}
	step(old, ruleT0, VerdictACK, restartTimer)
	step(old, ruleT0+499*ruleTick, VerdictDrop, restartTimer) // rate-limited: TCP_TW_SUCCESS, still rescheduled
	step(seg(tuple.ACK, 900, 10, noTS), ruleT0+499*ruleTick, VerdictACK, restartTimer)
	step(seg(tuple.SYN, 900, 10, noTS), ruleT0+499*ruleTick, VerdictDrop, keepTimer) // a SYN with data is limited
	step(old, ruleT0+500*ruleTick, VerdictACK, restartTimer)
	step(old, ruleT0+400*ruleTick, VerdictACK, restartTimer) // clock stepped back: elapsed < 0 is not limited
	// The FIN that ends FIN_WAIT2 is never limited, and the zero Rules
	// disable the limit.
	var none Rules
	r = newRecord(new(twState()), ruleT0)
	for range 3 {
		v, _, _ := r.process(&old, ruleT0, &none)
		require.Equal(t, VerdictACK, v)
	}
	v, act, _ := r.process(&old, ruleT0, nil) // nil rules are the zero Rules
	require.Equal(t, VerdictACK, v)
	require.Equal(t, restartTimer, act)
}

func TestProcessIgnoresNonTCP(t *testing.T) {
	r := newRecord(new(twState()), ruleT0)
	before := r
	rst := seg(tuple.RST, 1000, 0, noTS)
	icmp := rst
	icmp.ICMP = tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Type: 3, Code: 3}
	udp := rst
	udp.Proto = tuple.ProtoUDP
	for _, s := range []*tuple.Segment{&icmp, &udp, nil} {
		v, act, isn := r.process(s, ruleT0, nil)
		require.Equal(t, VerdictDrop, v)
		require.Equal(t, keepTimer, act)
		require.Zero(t, isn)
	}
	require.Equal(t, before, r)
	var nilRec *record
	v, act, _ := nilRec.process(&rst, ruleT0, nil)
	require.Equal(t, VerdictDrop, v)
	require.Equal(t, keepTimer, act)
	// The same RST as TCP does kill: the guard above is what saved it.
	v, act, _ = r.process(&rst, ruleT0, nil)
	require.Equal(t, VerdictDrop, v)
	require.Equal(t, killEntry, act)
}

func TestNewRecordNormalises(t *testing.T) {
	s := twState()
	s.Substate = 7
	s.RcvWScale = 20
	s.HasTimestamps = false
	s.TSOffset = 77
	r := newRecord(&s, 42)
	require.Equal(t, TimeWait, r.substate)
	require.Equal(t, uint8(14), r.rcvWScale)
	require.Zero(t, r.tsRecent)
	require.Zero(t, r.tsRecentStamp)
	require.Zero(t, r.flags&recTimestamps)
	require.Equal(t, time.Duration(42), r.entryStamp)
	require.Equal(t, uint32(77), r.tsOffset)
	s = fw2State()
	r = newRecord(&s, 42)
	require.Equal(t, FinWait2, r.substate)
	require.Equal(t, uint32(100), r.tsRecent)
	require.Equal(t, ruleT0, r.tsRecentStamp)
}

// The ACK an entry sends: tcp_v4_timewait_ack's snd_nxt, rcv_nxt,
// rcv_wnd >> rcv_wscale, and a timestamp option when ts_recent != 0.
func TestRecordACK(t *testing.T) {
	s := twState()
	s.RcvWnd = 1 << 20
	s.RcvWScale = 7
	s.TSOffset = 9
	r := newRecord(&s, ruleT0)
	require.Equal(t, ackFields{seq: 5000, ack: 1000, window: 1 << 13, timestamps: true, tsOffset: 9, tsEcr: 100}, r.ack())
	s.RcvWScale = 0
	s.HasTimestamps = false
	r = newRecord(&s, ruleT0)
	require.Equal(t, ackFields{seq: 5000, ack: 1000, window: 0xffff, tsOffset: 9}, r.ack())
}

// A record as a slot stores it (its 32-bit words, and the substate, flags
// and window scale in 4 bytes of the slot's meta word) and its timer's
// link in the wheel fit in 64 bytes: 52.
func TestRecordSize(t *testing.T) {
	var s slot
	require.Equal(t, uintptr(recWords*4), unsafe.Sizeof(s.rec))
	require.LessOrEqual(t, unsafe.Sizeof(s.rec)+4+unsafe.Sizeof(link{}), uintptr(64))
}

func TestRulesStrings(t *testing.T) {
	require.Equal(t, "TIME_WAIT", TimeWait.String())
	require.Equal(t, "FIN_WAIT2", FinWait2.String())
	require.Equal(t, "Substate(9)", Substate(9).String())
	require.Equal(t, []string{"drop", "ack", "rst", "new-syn", "Verdict(4)"},
		[]string{VerdictDrop.String(), VerdictACK.String(), VerdictRST.String(), VerdictNewSYN.String(), Verdict(4).String()})
	require.Equal(t, []string{"keep", "restart", "kill", "action(3)"},
		[]string{keepTimer.String(), restartTimer.String(), killEntry.String(), action(3).String()})
	require.Equal(t, Rules{InvalidRateLimit: 500 * time.Millisecond}, DefaultRules())
}

// modelTW is a second, deliberately plain transcription of
// tcp_timewait_state_process, written from the kernel source and the
// design notes rather than from rules.go: one function, top to bottom, in
// the kernel's order, with its own sequence arithmetic.
type modelTW struct {
	finWait2                  bool
	rcvNxt, sndNxt, rcvWnd    uint32
	hasTS                     bool
	tsRecent                  uint32
	tsStamp, entered, lastOOW time.Duration
	oowSet                    bool
}

// modelBefore: a is before b when a-b, read as a 32-bit two's complement
// number, is negative, i.e. its top bit is set.
func modelBefore(a, b uint32) bool { return a-b >= 1<<31 }

func modelFromState(s State, now time.Duration) modelTW {
	m := modelTW{
		finWait2: s.Substate == FinWait2,
		rcvNxt:   s.RcvNxt, sndNxt: s.SndNxt, rcvWnd: s.RcvWnd,
		hasTS: s.HasTimestamps, entered: now,
	}
	if m.hasTS {
		m.tsRecent, m.tsStamp = s.TSRecent, s.TSRecentStamp
	}
	return m
}

func modelFromRecord(r *record) modelTW {
	return modelTW{
		finWait2: r.substate == FinWait2,
		rcvNxt:   r.rcvNxt, sndNxt: r.sndNxt, rcvWnd: r.rcvWnd,
		hasTS: r.flags&recTimestamps != 0, tsRecent: r.tsRecent,
		tsStamp: r.tsRecentStamp, entered: r.entryStamp,
		lastOOW: r.lastOOWAck, oowSet: r.flags&recOOWAcked != 0,
	}
}

func (m *modelTW) step(s tuple.Segment, now time.Duration, rfc1337 bool, limit time.Duration) (Verdict, action, uint32) {
	if s.Proto != tuple.ProtoTCP || s.ICMP.Kind != tuple.ICMPNone {
		return VerdictDrop, keepTimer, 0
	}
	syn, fin := s.Flags&tuple.SYN != 0, s.Flags&tuple.FIN != 0
	rst, ack := s.Flags&tuple.RST != 0, s.Flags&tuple.ACK != 0
	seq := s.Seq
	end := seq + uint32(s.PayloadLen)
	if syn {
		end++
	}
	if fin {
		end++
	}
	sawTS := m.hasTS && s.HasTimestamps
	paws := false
	if sawTS {
		age := time.Duration(now - m.tsStamp)
		switch {
		case m.tsRecent-s.TSval == 0 || m.tsRecent-s.TSval >= 1<<31: // (s32)(ts_recent - tsval) <= 0
		case age >= 2147*time.Second:
		case m.tsRecent == 0:
		case rst && age >= time.Minute:
		default:
			paws = true
		}
	}
	oowACK := func() Verdict {
		if seq != end && !syn {
			return VerdictACK
		}
		if m.oowSet && now >= m.lastOOW && time.Duration(now-m.lastOOW) < limit {
			return VerdictDrop
		}
		m.oowSet, m.lastOOW = true, now
		return VerdictACK
	}
	isn := m.sndNxt + 65537
	if isn == 0 {
		isn = 1
	}

	if m.finWait2 {
		right := m.rcvNxt + m.rcvWnd
		inWin := seq == m.rcvNxt ||
			(modelBefore(m.rcvNxt, end) && modelBefore(seq, right)) ||
			(seq == right && seq == end)
		if paws || !inWin {
			return oowACK(), keepTimer, 0
		}
		if rst {
			return VerdictDrop, killEntry, 0
		}
		if syn && !modelBefore(seq, m.rcvNxt) {
			return VerdictRST, killEntry, 0
		}
		if !ack || !modelBefore(m.rcvNxt, end) || end == seq {
			return VerdictDrop, keepTimer, 0
		}
		if !fin || end != m.rcvNxt+1 {
			return VerdictRST, killEntry, 0
		}
		m.finWait2 = false
		m.rcvNxt = end
		if sawTS {
			m.entered, m.tsStamp, m.tsRecent = now, now, s.TSval
		}
		return VerdictACK, restartTimer, 0
	}

	if !paws && seq == m.rcvNxt && (seq == end || rst) {
		if rst && !rfc1337 {
			return VerdictDrop, killEntry, 0
		}
		act := restartTimer
		if rst {
			act = keepTimer
		}
		if sawTS {
			m.tsRecent, m.tsStamp = s.TSval, now
		}
		return VerdictDrop, act, 0
	}
	if syn && !rst && !ack && !paws &&
		(modelBefore(m.rcvNxt, seq) || (sawTS && modelBefore(m.tsRecent, s.TSval))) {
		return VerdictNewSYN, keepTimer, isn
	}
	if rst {
		return VerdictDrop, keepTimer, 0
	}
	act := keepTimer
	if paws || ack {
		act = restartTimer
	}
	return oowACK(), act, 0
}

// near draws a value at base plus a small offset (either side), or
// anywhere, so that equality and off-by-one branches are hit often.
func near(t *rapid.T, base uint32, label string) uint32 {
	switch rapid.IntRange(0, 3).Draw(t, label+"Kind") {
	case 0:
		return rapid.Uint32().Draw(t, label)
	default:
		return base + uint32(rapid.Int32Range(-3, 3).Draw(t, label))
	}
}

func drawState(t *rapid.T, now time.Duration) State {
	rcvNxt := rapid.SampledFrom([]uint32{0, 1, 1000, 1 << 31, 0xfffffff0, 0xffffffff}).Draw(t, "rcvNxtBase")
	rcvNxt = near(t, rcvNxt, "rcvNxt")
	tsBase := rapid.SampledFrom([]uint32{0, 1, 1000, 1 << 31, 0xffffffff}).Draw(t, "tsBase")
	age := rapid.SampledFrom([]time.Duration{0, time.Second, time.Minute - 1, time.Minute,
		2147*time.Second - 1, 2147 * time.Second, time.Hour, -time.Second}).Draw(t, "tsAge")
	return State{
		Substate:      Substate(rapid.SampledFrom([]uint8{0, 1, 1, 7}).Draw(t, "substate")),
		RcvNxt:        rcvNxt,
		SndNxt:        rapid.SampledFrom([]uint32{5000, 1<<32 - 65537, 0xffffff00, rapid.Uint32().Draw(t, "sndNxtAny")}).Draw(t, "sndNxt"),
		RcvWnd:        rapid.SampledFrom([]uint32{0, 1, 4000, 65535, 1 << 30}).Draw(t, "rcvWnd"),
		RcvWScale:     rapid.Uint8Range(0, 15).Draw(t, "wscale"),
		HasTimestamps: rapid.Bool().Draw(t, "hasTS"),
		TSRecent:      near(t, tsBase, "tsRecent"),
		TSRecentStamp: now - age,
	}
}

func drawSegment(t *rapid.T, m *modelTW) tuple.Segment {
	flags := tuple.Flags(rapid.SampledFrom([]uint8{
		uint8(tuple.ACK), uint8(tuple.SYN), uint8(tuple.RST), uint8(tuple.FIN | tuple.ACK),
		uint8(tuple.RST | tuple.ACK), uint8(tuple.SYN | tuple.ACK), uint8(tuple.FIN),
		uint8(tuple.PSH | tuple.ACK), rapid.Uint8().Draw(t, "anyFlags"),
	}).Draw(t, "flags"))
	seqBase := rapid.SampledFrom([]uint32{m.rcvNxt, m.rcvNxt - 1, m.rcvNxt + m.rcvWnd}).Draw(t, "seqBase")
	s := tuple.Segment{
		Tuple:         ruleTuple,
		Proto:         tuple.ProtoTCP,
		Version:       4,
		Flags:         flags,
		Seq:           near(t, seqBase, "seq"),
		PayloadLen:    rapid.SampledFrom([]uint16{0, 0, 1, 100, rapid.Uint16().Draw(t, "anyLen")}).Draw(t, "len"),
		HasTimestamps: rapid.Bool().Draw(t, "segTS"),
		TSval:         near(t, m.tsRecent, "tsval"),
	}
	switch rapid.IntRange(0, 15).Draw(t, "proto") {
	case 0:
		s.Proto = tuple.ProtoUDP
	case 1:
		s.ICMP.Kind = tuple.ICMPUnreachable
	}
	return s
}

// process agrees with the model on every verdict, timer action, ISN and
// resulting state, over sequences of segments on several entries per run
// (so that even rapid's default 100 runs reach every branch).
func TestProcessMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		for range rapid.IntRange(1, 10).Draw(t, "entries") {
			checkEntryAgainstModel(t)
		}
	})
}

func checkEntryAgainstModel(t *rapid.T) {
	now := time.Duration(rapid.Int64Range(0, 1<<50).Draw(t, "t0"))
	st := drawState(t, now)
	r := newRecord(&st, now)
	m := modelFromState(st, now)
	require.Equal(t, m, modelFromRecord(&r), "initial state")
	rules := Rules{
		RFC1337:          rapid.Bool().Draw(t, "rfc1337"),
		InvalidRateLimit: rapid.SampledFrom([]time.Duration{0, 500 * time.Millisecond, time.Second}).Draw(t, "limit"),
	}
	for i := range rapid.IntRange(1, 12).Draw(t, "segments") {
		now += (rapid.SampledFrom([]time.Duration{0, time.Millisecond, 499 * time.Millisecond,
			500 * time.Millisecond, time.Minute, -time.Second}).Draw(t, "dt"))
		s := drawSegment(t, &m)
		v, act, isn := r.process(&s, now, &rules)
		mv, mact, misn := m.step(s, now, rules.RFC1337, rules.InvalidRateLimit)
		require.Equal(t, mv, v, "verdict of segment %d %+v", i, s)
		require.Equal(t, mact, act, "action of segment %d", i)
		require.Equal(t, misn, isn, "isn of segment %d", i)
		require.Equal(t, m, modelFromRecord(&r), "state after segment %d", i)
		if act == killEntry {
			return
		}
	}
}

// Any record and any segment give a verdict without panicking.
func TestProcessNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := record{
			tsRecentStamp: time.Duration(rapid.Int64().Draw(t, "stamp")),
			entryStamp:    time.Duration(rapid.Int64().Draw(t, "entry")),
			lastOOWAck:    time.Duration(rapid.Int64().Draw(t, "oow")),
			rcvNxt:        rapid.Uint32().Draw(t, "rcvNxt"),
			sndNxt:        rapid.Uint32().Draw(t, "sndNxt"),
			rcvWnd:        rapid.Uint32().Draw(t, "rcvWnd"),
			tsRecent:      rapid.Uint32().Draw(t, "tsRecent"),
			substate:      Substate(rapid.Uint8().Draw(t, "substate")),
			flags:         recordFlags(rapid.Uint8().Draw(t, "flags")),
			rcvWScale:     rapid.Uint8().Draw(t, "wscale"),
		}
		s := tuple.Segment{
			Proto: tuple.Proto(rapid.SampledFrom([]uint8{0, 6, 17}).Draw(t, "proto")),
			Flags: tuple.Flags(rapid.Uint8().Draw(t, "segFlags")), Seq: rapid.Uint32().Draw(t, "seq"),
			PayloadLen: rapid.Uint16().Draw(t, "len"), TSval: rapid.Uint32().Draw(t, "tsval"),
			HasTimestamps: rapid.Bool().Draw(t, "ts"),
		}
		rules := Rules{RFC1337: rapid.Bool().Draw(t, "rfc1337"), InvalidRateLimit: time.Duration(rapid.Int64().Draw(t, "limit"))}
		r.process(&s, time.Duration(rapid.Int64().Draw(t, "now")), &rules)
		r.ack()
		r.reusable(ruleTuple, time.Duration(rapid.Int64().Draw(t, "now2")), ReuseMode(rapid.Uint8().Draw(t, "mode")), rapid.Bool().Draw(t, "bind"))
	})
}
