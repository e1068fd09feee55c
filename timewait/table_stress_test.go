package timewait

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"

	"github.com/socktable/socktable/tuple"
)

// Every owner is handed out exactly once: expiry (OnExpire) races Enter,
// Process (RSTs that kill, ACKs that restart), Kill, TakeOver, Replace and
// Lookup on a few hot four-tuples, and Close hands out what is left. At
// the end each owner that went in came out once, by exactly one of those
// paths, and no timer outlives its entry nor entry its timer.
func TestTableStressOwnersExactlyOnce(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, stressTable)
}

func stressTable(t *testing.T) {
	const workers, keys = 4, 24
	ops := 3000
	if testing.Short() {
		ops = 500
	}
	handed := make([]atomic.Int32, workers*ops+1) // per owner: how many times it came back
	var viaExpiry, viaCall atomic.Int64
	give := func(owner int, via *atomic.Int64) {
		if owner <= 0 || owner >= len(handed) {
			t.Errorf("owner %d handed out, never entered", owner)
			return
		}
		handed[owner].Add(1)
		via.Add(1)
	}
	clk := new(ManualClock)
	tb, err := NewTable(TableOptions[int]{Clock: clk, Lifetime: 3 * time.Millisecond, FinWait2Timeout: 2 * time.Millisecond,
		Reuse: ReuseOn, MaxBuckets: keys - 4, Shards: 4,
		OnExpire: func(_ tuple.Tuple, owner int) { give(owner, &viaExpiry) }})
	require.NoError(t, err)
	var entered atomic.Int64
	entry := make([]atomic.Bool, workers*ops+1) // entered[owner]
	stop := make(chan struct{})
	ticker := make(chan struct{})
	go func() { // the clock and its expiries, racing the workers
		defer close(ticker)
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(time.Millisecond)
			tb.Advance()
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := porctest.NewRand(uint64(w))
			for i := range ops {
				if i%64 == 0 { // the workers move the clock too, so entries expire even if the clock goroutine is starved
					clk.Advance(time.Millisecond)
					tb.Advance()
				}
				x := rnd.Next()
				tu := flow(int(x>>8%keys), x&1 == 0)
				switch x >> 16 % 7 {
				case 0, 1:
					owner := w*ops + i + 1
					st := twState()
					st.Substate = Substate(x >> 24 % 2)
					st.TSRecentStamp = clk.Now()
					if tb.Enter(tu, st, owner) == nil {
						entered.Add(1)
						entry[owner].Store(true)
					}
				case 2:
					if owner, ok := tb.Kill(tu); ok {
						give(owner, &viaCall)
					}
				case 3:
					if _, owner, ok := tb.TakeOver(tu, x&4 == 0); ok {
						give(owner, &viaCall)
					}
				case 4:
					owner, ok, err := tb.Replace(tu, func() error {
						if x&8 == 0 {
							return errInstall
						}
						return nil
					})
					if ok {
						give(owner, &viaCall)
					}
					assert.Equal(t, x&8 == 0, err != nil)
				case 5:
					tb.Lookup(tu)
				default:
					flags := []tuple.Flags{tuple.ACK, tuple.RST, tuple.SYN, tuple.FIN | tuple.ACK}[x>>24%4]
					s := seg(flags, 1000, 0, int64(x>>32%300))
					if flags == tuple.RST {
						s.HasTimestamps = false // in window at rcv_nxt: it kills
					}
					if r, owner, ok := tb.Process(tu, &s); ok && r.Fate == FateRemoved {
						give(owner, &viaCall)
					} else {
						assert.Zero(t, owner, "an owner with a kept entry")
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-ticker
	st := tb.Stats()
	require.Equal(t, st.Entries, st.Timers, "an entry without a timer or a timer without an entry")
	left := int64(st.Entries)
	require.NoError(t, tb.Close())
	require.Zero(t, tb.Len())
	require.Equal(t, entered.Load(), viaExpiry.Load()+viaCall.Load(), "owners in and out")
	require.Equal(t, uint64(viaCall.Load()), st.Killed)
	require.Equal(t, int64(st.Expired)+left, viaExpiry.Load(), "OnExpire: expiries and what Close found")
	for owner := range handed {
		want := int32(0)
		if entry[owner].Load() {
			want = 1
		}
		require.Equal(t, want, handed[owner].Load(), "owner %d", owner)
	}
	require.Positive(t, st.Expired)
	require.Positive(t, st.Killed)
}

// A lock-free Lookup never returns a half-written record: a writer keeps
// ts_recent and its stamp in step (a bare ACK at rcv_nxt records both) and
// yields between the two stores, and readers must never see them apart.
func TestTableLookupNeverTorn(t *testing.T) {
	midWrite = runtime.Gosched
	defer func() { midWrite = nil }()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	clk := new(ManualClock)
	clk.Set(time.Hour)
	tb, err := NewTable(TableOptions[int]{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer tb.Close()
	tu := flow(1, false)
	st := twState()
	st.TSRecent, st.TSRecentStamp = 0, time.Hour
	require.NoError(t, tb.Enter(tu, st, 1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ms := uint32(1); ms <= 2000; ms++ {
			clk.Set(time.Hour + time.Duration(ms)*time.Millisecond)
			s := seg(tuple.ACK, 1000, 0, int64(ms))
			_, _, ok := tb.Process(tu, &s)
			if !assert.True(t, ok) {
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			require.Positive(t, reads)
			return
		default:
		}
		got, ok := tb.Lookup(tu)
		require.True(t, ok)
		require.Equal(t, time.Hour+time.Duration(got.TSRecent)*time.Millisecond, got.TSRecentStamp,
			"ts_recent %d with another one's stamp", got.TSRecent)
		reads++
		runtime.Gosched()
	}
}

// Readers go on finding every entry while writers grow the index under
// them: the larger index is built beside the old one, which readers keep
// probing, and swapped in only when it holds every entry. The builder
// yields while it copies, so the reader runs in the middle of each growth.
func TestTableLookupDuringGrowth(t *testing.T) {
	midWrite = runtime.Gosched
	defer func() { midWrite = nil }()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tb, _ := newTestTable(t, testOptions{Shards: 1})
	const residents, added = 50, 5000
	for i := range residents {
		require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState(), i))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := residents; i < residents+added; i++ {
			if !assert.NoError(t, tb.Enter(flow(i, i%2 == 0), twState(), i)) {
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			require.Greater(t, reads, added/64, "the reader ran during the growths")
			return
		default:
		}
		i := reads % residents
		_, ok := tb.Lookup(flow(i, i%2 == 0))
		require.True(t, ok, "resident %d lost during a growth", i)
		reads++
		runtime.Gosched()
	}
}
