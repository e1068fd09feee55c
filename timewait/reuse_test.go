package timewait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

var (
	loopTuple = tuple.Tuple{
		Local:  tuple.MustEndpoint("127.0.0.1:40000"),
		Remote: tuple.MustEndpoint("127.0.0.1:80"),
	}
	loopRemoteOnly = tuple.Tuple{
		Local:  tuple.MustEndpoint("10.0.0.1:40000"),
		Remote: tuple.MustEndpoint("127.0.0.53:53"),
	}
	loop6Tuple = tuple.Tuple{
		Local:  tuple.MustEndpoint("[::1]:40000"),
		Remote: tuple.MustEndpoint("[2001:db8::1]:80"),
	}
	mappedLoopTuple = tuple.Tuple{
		Local:  tuple.MustEndpoint("[::ffff:127.0.0.1]:40000"),
		Remote: tuple.MustEndpoint("[::ffff:10.0.0.2]:80"),
	}
	wideTuple = tuple.Tuple{
		Local:  tuple.MustEndpoint("10.0.0.1:40000"),
		Remote: tuple.MustEndpoint("10.0.0.2:80"),
	}
)

func TestReusable(t *testing.T) {
	const entered = ruleT0
	after := entered + ReuseDelay + 1
	tw := twState()
	fw2 := fw2State()
	noTS := twState()
	noTS.HasTimestamps = false
	wrapSeq := twState()
	wrapSeq.SndNxt = 1<<32 - 65537
	cases := []struct {
		name   string
		kernel string // the behaviour of tcp_twsk_unique checked
		state  State
		t      tuple.Tuple
		now    time.Duration
		mode   ReuseMode
		bind   bool
		ok     bool
		seq    uint32
	}{
		{"on, after the delay", "reuse && time_after32(now, tw_entry_stamp + tcp_tw_reuse_delay)",
			tw, wideTuple, after, ReuseOn, false, true, 5000 + 65537},
		{"on, exactly at the delay", "time_after32 is strict",
			tw, wideTuple, entered + ReuseDelay, ReuseOn, false, false, 0},
		{"on, before the delay", "not yet after",
			tw, wideTuple, entered + time.Millisecond, ReuseOn, false, false, 0},
		{"off", "tcp_tw_reuse=0: reuse is 0",
			tw, loopTuple, after, ReuseOff, false, false, 0},
		{"loopback mode, loopback flow", "reuse == 2 and ipv4_is_loopback(daddr or rcv_saddr)",
			tw, loopTuple, after, ReuseLoopback, false, true, 5000 + 65537},
		{"loopback mode, loopback at the remote end only", "either address counts",
			tw, loopRemoteOnly, after, ReuseLoopback, false, true, 5000 + 65537},
		{"loopback mode, IPv6 ::1", "ipv6_addr_loopback",
			tw, loop6Tuple, after, ReuseLoopback, false, true, 5000 + 65537},
		{"loopback mode, v4-mapped loopback", "ipv6_addr_v4mapped_loopback",
			tw, mappedLoopTuple, after, ReuseLoopback, false, true, 5000 + 65537},
		{"loopback mode, other flow", "!loopback: reuse = 0",
			tw, wideTuple, after, ReuseLoopback, false, false, 0},
		{"unknown mode behaves as on", "any reuse other than 0 and 2 is true",
			tw, wideTuple, after, ReuseMode(9), false, true, 5000 + 65537},
		{"no timestamps: never", "tw_ts_recent_stamp == 0",
			noTS, loopTuple, after, ReuseOn, false, false, 0},
		{"no timestamps: not even when bound", "ts_recent_stamp is required on both paths",
			noTS, loopTuple, after, ReuseOn, true, false, 0},
		{"FIN_WAIT2 is not reused by the sysctl", "tw_substate == TCP_FIN_WAIT2: reuse = 0",
			fw2, loopTuple, after, ReuseOn, false, false, 0},
		{"explicit bind ignores the sysctl", "!twp: sysctl not consulted",
			tw, wideTuple, entered, ReuseOff, true, true, 5000 + 65537},
		{"explicit bind ignores the delay", "!twp: no time check",
			tw, wideTuple, entered, ReuseLoopback, true, true, 5000 + 65537},
		{"explicit bind reuses FIN_WAIT2 too (kernel twin)", "the FIN_WAIT2 test only clears reuse",
			fw2, wideTuple, entered, ReuseOff, true, true, 5000 + 65537},
		{"write_seq 0 becomes 1", "if (!seq) seq = 1",
			wrapSeq, wideTuple, after, ReuseOn, false, true, 1},
		{"clock stepped back", "time_after32 is a signed difference",
			tw, wideTuple, entered - time.Hour, ReuseOn, false, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRecord(&c.state, entered)
			before := r
			ok, seq := r.reusable(c.t, c.now, c.mode, c.bind)
			require.Equal(t, c.ok, ok, c.kernel)
			require.Equal(t, c.seq, seq, c.kernel)
			require.Equal(t, before, r, "reusable changes nothing")
		})
	}
}

// The delay runs from entry into true TIME_WAIT: a FIN_WAIT2 entry that
// receives the peer's FIN (with a timestamp) starts it again, while an ACK
// that refreshes ts_recent does not (Linux 6.14's tw_entry_stamp).
func TestReuseDelayFromTimeWaitEntry(t *testing.T) {
	r := newRecord(new(fw2State()), ruleT0)
	fin := seg(tuple.FIN|tuple.ACK, 1000, 0, 150)
	finAt := ruleT0 + 10*ruleStep
	v, _, _ := r.process(&fin, finAt, nil)
	require.Equal(t, VerdictACK, v)
	ok, _ := r.reusable(wideTuple, finAt+ReuseDelay, ReuseOn, false)
	require.False(t, ok, "delay restarted at the FIN")
	ok, seq := r.reusable(wideTuple, finAt+ReuseDelay+1, ReuseOn, false)
	require.True(t, ok)
	require.Equal(t, uint32(5000+65537), seq)

	r = newRecord(new(twState()), ruleT0)
	ack := seg(tuple.ACK, 1000, 0, 200)
	r.process(&ack, ruleT0+ruleStep, nil)
	require.Equal(t, uint32(200), r.tsRecent, "ts_recent refreshed")
	ok, _ = r.reusable(wideTuple, ruleT0+ReuseDelay+1, ReuseOn, false)
	require.True(t, ok, "a refreshed ts_recent does not delay reuse")
}

// reusable agrees with a plain transcription of tcp_twsk_unique.
func TestReusableMatchesModel(t *testing.T) {
	tuples := []tuple.Tuple{loopTuple, loopRemoteOnly, loop6Tuple, mappedLoopTuple, wideTuple}
	rapid.Check(t, func(t *rapid.T) {
		st := twState()
		st.Substate = Substate(rapid.SampledFrom([]uint8{0, 1, 3}).Draw(t, "substate"))
		st.HasTimestamps = rapid.Bool().Draw(t, "hasTS")
		st.SndNxt = rapid.SampledFrom([]uint32{0, 1<<32 - 65537, rapid.Uint32().Draw(t, "anySnd")}).Draw(t, "sndNxt")
		entered := time.Duration(rapid.Int64Range(-1<<50, 1<<50).Draw(t, "entered"))
		now := entered + (rapid.SampledFrom([]time.Duration{0, time.Second, time.Second + 1,
			-time.Second, time.Minute, time.Duration(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "anyDt"))}).Draw(t, "dt"))
		tu := rapid.SampledFrom(tuples).Draw(t, "tuple")
		mode := ReuseMode(rapid.Uint8Range(0, 4).Draw(t, "mode"))
		bind := rapid.Bool().Draw(t, "bind")

		wantOK, wantSeq := modelTwskUnique(st.Substate == FinWait2, st.HasTimestamps, st.SndNxt, entered, now, tu, mode, bind)

		r := newRecord(&st, entered)
		ok, seq := r.reusable(tu, now, mode, bind)
		require.Equal(t, wantOK, ok)
		require.Equal(t, wantSeq, seq)
	})
}

// modelTwskUnique is tcp_twsk_unique, top to bottom, for an entry with
// the given substate, timestamps flag and snd_nxt that entered TIME_WAIT
// at entered: whether a connect at now may take it over, and its ISN.
func modelTwskUnique(finWait2, hasTS bool, sndNxt uint32, entered, now time.Duration, tu tuple.Tuple, mode ReuseMode, bind bool) (bool, uint32) {
	reuse := int(mode)
	if finWait2 {
		reuse = 0
	}
	if reuse == 2 && !tu.Local.Addr.IsLoopback() && !tu.Remote.Addr.IsLoopback() {
		reuse = 0
	}
	ok := hasTS && (bind || (reuse != 0 && now-(entered+time.Second) > 0))
	if !ok {
		return false, 0
	}
	seq := sndNxt + 65535 + 2
	if seq == 0 {
		seq = 1
	}
	return true, seq
}

func TestReuseModeString(t *testing.T) {
	require.Equal(t, []string{"off", "on", "loopback", "ReuseMode(3)"},
		[]string{ReuseOff.String(), ReuseOn.String(), ReuseLoopback.String(), ReuseMode(3).String()})
	var nilRec *record
	ok, seq := nilRec.reusable(loopTuple, 0, ReuseOn, true)
	require.False(t, ok)
	require.Zero(t, seq)
}
