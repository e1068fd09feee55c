package timewait

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// Expiry races Enter, Process, Kill and TakeOver on a few hot four-tuples:
// at the end every entry that went in came out exactly once (by its timer
// or by a kill), and no timer outlives its entry nor entry its timer.
func TestTableStressExpiryRacesKill(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			stressTable(t)
		})
	}
}

func stressTable(t *testing.T) {
	const workers, ops, keys = 4, 3000, 24
	clk := new(ManualClock)
	tb, err := New(Options{Clock: clk, Lifetime: 3 * time.Millisecond, FinWait2Timeout: 2 * time.Millisecond,
		Reuse: ReuseOn, MaxBuckets: keys - 4, Shards: 4})
	require.NoError(t, err)
	defer tb.Close()
	var entered, killedByKill atomic.Int64
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
			x := uint64(w)*0x9e3779b97f4a7c15 | 1
			for range ops {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				tu := flow(int(x>>8%keys), x&1 == 0)
				switch x >> 16 % 6 {
				case 0, 1:
					st := twState()
					st.Substate = Substate(x >> 24 % 2)
					st.TSRecentStamp = clk.Now()
					if tb.Enter(tu, st) == nil {
						entered.Add(1)
					}
				case 2:
					if tb.Kill(tu) {
						killedByKill.Add(1)
					}
				case 3:
					_, _ = tb.TakeOver(tu, x&4 == 0)
				case 4:
					tb.Lookup(tu)
				default:
					flags := []tuple.Flags{tuple.ACK, tuple.RST, tuple.SYN, tuple.FIN | tuple.ACK}[x>>24%4]
					s := seg(flags, 1000, 0, int64(x>>32%300))
					tb.Process(tu, &s)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-ticker
	clk.Advance(time.Hour)
	tb.Advance()
	st := tb.Stats()
	require.Zero(t, tb.Len(), "entries left after every timer fired")
	require.Zero(t, tb.Stats().Timers, "timers left after every entry went")
	require.Equal(t, uint64(entered.Load()), st.Expired+st.Killed, "every entry leaves exactly once")
	require.GreaterOrEqual(t, st.Killed, uint64(killedByKill.Load()))
	require.Positive(t, st.Expired)
	require.Positive(t, killedByKill.Load())
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
	tb, err := New(Options{Clock: clk, Shards: 1})
	require.NoError(t, err)
	defer tb.Close()
	tu := flow(1, false)
	st := twState()
	st.TSRecent, st.TSRecentStamp = 0, time.Hour
	require.NoError(t, tb.Enter(tu, st))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ms := uint32(1); ms <= 2000; ms++ {
			clk.Set(time.Hour + time.Duration(ms)*time.Millisecond)
			s := seg(tuple.ACK, 1000, 0, int64(ms))
			_, ok := tb.Process(tu, &s)
			require.True(t, ok)
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
	tb, _ := newTestTable(t, Options{Shards: 1})
	const residents, added = 50, 5000
	for i := range residents {
		require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState()))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := residents; i < residents+added; i++ {
			require.NoError(t, tb.Enter(flow(i, i%2 == 0), twState()))
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
