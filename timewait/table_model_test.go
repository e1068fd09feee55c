package timewait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

// modelEntry is the model's TIME_WAIT entry: the kernel transcription of
// rules_test.go, the window scale and timestamp offset it does not need,
// and when the entry must expire.
type modelEntry struct {
	m        modelTW
	wscale   uint8
	tsOffset uint32
	deadline time.Duration
	owner    int
}

// tableModelFlows are the flows the model draws from: loopback and not,
// IPv4 and IPv6, so TakeOver's loopback rule and both key forms are hit.
var tableModelFlows = []tuple.Tuple{
	tuple.MustNew("127.0.0.1:40000", "127.0.0.1:80"),
	tuple.MustNew("10.0.0.1:80", "10.0.0.2:40000"),
	tuple.MustNew("10.0.0.1:80", "10.0.0.2:40001"),
	tuple.MustNew("[2001:db8::1]:443", "[2001:db8::2]:5000"),
	tuple.MustNew("[::1]:443", "[::1]:5000"),
	tuple.MustNew("10.0.0.3:80", "10.0.0.2:40000"),
}

// The Table agrees with a map of transcribed entries under random Enter,
// Process, Kill, TakeOver, Replace, Lookup, All, clock moves and Close:
// same verdicts, fates, ISNs and ACK fields as the transcription of
// tcp_timewait_state_process, same states, entries expiring exactly when
// their (restarted) timers say, the MaxBuckets cap, and every owner handed
// back exactly once, by the call that removed its entry (OnExpire for
// expiry and Close). Lifetimes of a few tens of ms keep the timers in the
// wheel's finest level, where they fire at their tick exactly.
func TestTableMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		expired := map[int]tuple.Tuple{} // owners handed to OnExpire, not yet checked
		handedOut := map[int]bool{}      // every owner handed back so far
		opts := TableOptions[int]{
			Lifetime:         time.Duration(rapid.IntRange(5, 60).Draw(t, "lifetimeMS")) * time.Millisecond,
			FinWait2Timeout:  time.Duration(rapid.IntRange(5, 60).Draw(t, "fw2MS")) * time.Millisecond,
			MaxBuckets:       rapid.IntRange(1, 7).Draw(t, "max"),
			RFC1337:          rapid.Bool().Draw(t, "rfc1337"),
			InvalidRateLimit: rapid.SampledFrom([]time.Duration{-1, 0, 20 * time.Millisecond}).Draw(t, "limit"),
			Reuse:            ReuseMode(rapid.Uint8Range(0, 2).Draw(t, "reuse")),
			Shards:           rapid.SampledFrom([]int{1, 2, 8}).Draw(t, "shards"),
			OnExpire: func(tp tuple.Tuple, owner int) {
				_, dup := expired[owner]
				require.False(t, dup || handedOut[owner], "owner %d handed out twice", owner)
				expired[owner] = tp
			},
		}
		limit := opts.InvalidRateLimit
		switch {
		case limit == 0:
			limit = DefaultInvalidRateLimit
		case limit < 0:
			limit = 0
		}
		clk := new(ManualClock)
		now := 2 * time.Hour
		clk.Set(now)
		opts.Clock = clk
		tb, err := NewTable(opts)
		require.NoError(t, err)
		closed := false
		defer func() {
			if !closed {
				_ = tb.Close()
			}
		}()
		model := map[tuple.Tuple]*modelEntry{}
		overflows := uint64(0)
		serial := 0
		// back checks that owner came back from the entry of tu, once.
		back := func(t *rapid.T, tu tuple.Tuple, owner int) {
			e := model[tu]
			require.NotNil(t, e)
			require.Equal(t, e.owner, owner, "the owner of %v", tu)
			require.False(t, handedOut[owner], "owner %d handed out twice", owner)
			handedOut[owner] = true
			delete(model, tu)
		}

		t.Repeat(map[string]func(*rapid.T){
			"enter": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				st := drawState(t, now)
				st.TSRecentStamp = min(st.TSRecentStamp-st.TSRecentStamp%time.Millisecond, now)
				st.TSOffset = rapid.Uint32().Draw(t, "tsOffset")
				serial++
				err := tb.Enter(tu, st, serial)
				switch {
				case model[tu] != nil: // a duplicate takes no room, even at the cap
					require.ErrorIs(t, err, ErrExists)
				case len(model) >= opts.MaxBuckets:
					require.ErrorIs(t, err, ErrTimeWaitFull)
					overflows++
				default:
					require.NoError(t, err)
					life := opts.Lifetime
					if st.Substate == FinWait2 {
						life = opts.FinWait2Timeout
					}
					model[tu] = &modelEntry{m: modelFromState(st, now), wscale: min(st.RcvWScale, 14),
						tsOffset: st.TSOffset, deadline: now + life, owner: serial}
				}
			},
			"process": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				e := model[tu]
				var m modelTW
				if e != nil {
					m = e.m
				}
				s := drawSegment(t, &m)
				s.Tuple = tu
				reply, owner, ok := tb.Process(tu, &s)
				require.Equal(t, e != nil, ok)
				if e == nil {
					require.Zero(t, owner)
					return
				}
				wasFW2 := e.m.finWait2
				v, act, isn := e.m.step(s, now, opts.RFC1337, limit)
				want := Reply{Verdict: v, ISN: isn}
				switch act {
				case killEntry:
					want.Fate = FateRemoved
				case restartTimer:
					want.Fate = FateRestarted
					if wasFW2 && !e.m.finWait2 {
						want.Fate = FateTimeWait
					}
				}
				if v == VerdictACK || v == VerdictNewSYN {
					want.Seq, want.Ack = e.m.sndNxt, e.m.rcvNxt
					want.Window = uint16(min(e.m.rcvWnd>>e.wscale, 0xffff))
					want.Timestamps, want.TSOffset, want.TSEcr = e.m.tsRecent != 0, e.tsOffset, e.m.tsRecent
				}
				require.Equal(t, want, reply)
				switch act {
				case killEntry:
					back(t, tu, owner)
				case restartTimer:
					e.deadline = now + opts.Lifetime
				}
			},
			"kill": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				owner, ok := tb.Kill(tu)
				require.Equal(t, model[tu] != nil, ok)
				if ok {
					back(t, tu, owner)
				} else {
					require.Zero(t, owner)
				}
			},
			"takeOver": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				bind := rapid.Bool().Draw(t, "bind")
				peek, peekOK := tb.Reusable(tu, bind)
				got, owner, ok := tb.TakeOver(tu, bind)
				require.Equal(t, peekOK, ok)
				require.Equal(t, peek, got)
				e := model[tu]
				if e == nil {
					require.False(t, ok)
					return
				}
				wantOK, seq := modelTwskUnique(e.m.finWait2, e.m.hasTS, e.m.sndNxt, e.m.entered, now, tu, opts.Reuse, bind)
				require.Equal(t, wantOK, ok)
				if ok {
					require.Equal(t, Reuse{WriteSeq: seq, TSRecent: e.m.tsRecent, TSRecentStamp: e.m.tsStamp}, got)
					back(t, tu, owner)
				} else {
					require.Zero(t, owner)
				}
			},
			"replace": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				fail := rapid.Bool().Draw(t, "installFails")
				ran := false
				owner, ok, err := tb.Replace(tu, func() error {
					ran = true
					if fail {
						return errInstall
					}
					return nil
				})
				require.True(t, ran, "install runs whether or not tp has an entry")
				if fail {
					require.ErrorIs(t, err, errInstall)
					require.False(t, ok)
					require.Zero(t, owner)
					return
				}
				require.NoError(t, err)
				require.Equal(t, model[tu] != nil, ok)
				if ok {
					back(t, tu, owner)
				}
			},
			"all": func(t *rapid.T) {
				seen := map[tuple.Tuple]State{}
				for tp, st := range tb.All() {
					_, dup := seen[tp]
					require.False(t, dup, "All yields %v twice", tp)
					seen[tp] = st
				}
				require.Len(t, seen, len(model))
				for tp := range model {
					want, ok := tb.Lookup(tp)
					require.True(t, ok)
					require.Equal(t, want, seen[tp], "All's state of %v", tp)
				}
			},
			"lookup": func(t *rapid.T) {
				tu := rapid.SampledFrom(tableModelFlows).Draw(t, "flow")
				st, ok := tb.Lookup(tu)
				e := model[tu]
				require.Equal(t, e != nil, ok)
				if e == nil {
					return
				}
				want := State{RcvNxt: e.m.rcvNxt, SndNxt: e.m.sndNxt, RcvWnd: e.m.rcvWnd, RcvWScale: e.wscale,
					TSOffset: e.tsOffset, HasTimestamps: e.m.hasTS}
				if e.m.finWait2 {
					want.Substate = FinWait2
				}
				if e.m.hasTS {
					want.TSRecent, want.TSRecentStamp = e.m.tsRecent, e.m.tsStamp
				}
				require.Equal(t, want, st)
			},
			"advance": func(t *rapid.T) {
				now += time.Duration(rapid.SampledFrom([]int{0, 1, 5, 19, 20, 21, rapid.IntRange(0, 70).Draw(t, "anyDtMS")}).Draw(t, "dtMS")) * time.Millisecond
				clk.Set(now)
				fired := tb.Advance()
				want := 0
				for tu, e := range model {
					if e.deadline <= now {
						want++
						got, ok := expired[e.owner]
						require.True(t, ok, "the owner of %v did not go to OnExpire", tu)
						require.Equal(t, tu, got)
						delete(expired, e.owner)
						back(t, tu, e.owner)
					}
				}
				require.Equal(t, want, fired)
				require.Empty(t, expired, "OnExpire got owners of entries that are not due")
			},
			"": func(t *rapid.T) {
				require.Equal(t, len(model), tb.Len())
				require.Equal(t, overflows, tb.Stats().Overflows)
				require.Empty(t, expired, "OnExpire called outside Advance")
			},
		})
		// Close hands the remaining owners to OnExpire.
		require.NoError(t, tb.Close())
		closed = true
		for tu, e := range model {
			got, ok := expired[e.owner]
			require.True(t, ok, "Close lost the owner of %v", tu)
			require.Equal(t, tu, got)
			delete(expired, e.owner)
		}
		require.Empty(t, expired)
		require.ErrorIs(t, tb.Close(), ErrClosed)
	})
}
