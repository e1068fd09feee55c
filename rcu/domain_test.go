package rcu_test

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

func TestStripesArePaddedAndSized(t *testing.T) {
	d := rcu.NewDomain()
	n := d.NumStripes()
	require.GreaterOrEqual(t, n, 4*runtime.GOMAXPROCS(0))
	require.GreaterOrEqual(t, n, 8)
	require.Zero(t, n&(n-1), "power of two")
	require.Equal(t, uintptr(64), unsafe.Sizeof(rcu.Stripe{}), "one stripe per cache line")
}

func TestEpochWaitsForReaders(t *testing.T) {
	d := rcu.NewDomain()
	e0 := d.Epoch()
	g := d.Enter()
	// The reader is counted under e0. One advance is free (it drains the
	// other parity); the second must wait for the reader.
	require.True(t, d.TryAdvance())
	require.Equal(t, e0+1, d.Epoch())
	for range 3 {
		require.False(t, d.TryAdvance(), "advanced past a reader still inside")
	}
	require.Equal(t, e0+1, d.Epoch())
	g.Exit()
	require.True(t, d.TryAdvance())
	require.Equal(t, e0+2, d.Epoch())
}

func TestStaleReaderIsRecountedUnderTheNewEpoch(t *testing.T) {
	d := rcu.NewDomain()
	stale := d.Epoch()
	require.True(t, d.TryAdvance())
	// A reader that loaded the epoch before the advance must not be counted
	// under the old parity: that parity may already be drained.
	_, ok := d.EnterWithEpoch(0, stale)
	require.False(t, ok)
	require.Zero(t, d.ActiveReaders(stale), "the failed attempt undid its increment")
	g, ok := d.EnterWithEpoch(0, d.Epoch())
	require.True(t, ok)
	require.EqualValues(t, 1, d.ActiveReaders(d.Epoch()))
	g.Exit()
}

func TestEnterRetriesWhenTheEpochMoves(t *testing.T) {
	d := rcu.NewDomain()
	moved := false
	rcu.SetEnterHook(func() {
		if !moved {
			moved = true
			require.True(t, d.TryAdvance())
		}
	})
	defer rcu.SetEnterHook(nil)
	g := d.Enter()
	// The first attempt saw the old epoch and was undone; the reader is
	// counted once, under the current epoch.
	require.EqualValues(t, 1, d.ActiveReaders(d.Epoch()))
	require.Zero(t, d.ActiveReaders(d.Epoch()+1))
	g.Exit()
}

func TestSynchronizeWaitsForAReaderInside(t *testing.T) {
	d := rcu.NewDomain()
	g := d.Enter()
	waiting := watchWaits(t)
	done := make(chan struct{})
	go func() {
		d.Synchronize()
		close(done)
	}()
	// Synchronize has seen the reader and is waiting for it (twice, to be
	// sure it went round its loop), and has not returned.
	<-waiting
	<-waiting
	select {
	case <-done:
		t.Fatal("Synchronize returned while a reader that began before it was inside")
	default:
	}
	g.Exit()
	<-done
}

func TestSynchronizeIgnoresLaterReaders(t *testing.T) {
	d := rcu.NewDomain()
	d.Synchronize() // no readers: returns at once
	e := d.Epoch()
	require.GreaterOrEqual(t, e, uint64(2))
	// Readers that come and go all the time do not hold it back: each
	// enters under the newest epoch.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				d.Enter().Exit()
			}
		}
	}()
	for range 100 {
		d.Synchronize()
	}
	close(stop)
	<-done
	require.GreaterOrEqual(t, d.Epoch(), e+200)
}

func TestExitMisuse(t *testing.T) {
	d := rcu.NewDomain()
	require.Panics(t, func() { rcu.Guard{}.Exit() })
	g := d.Enter()
	g.Exit()
	require.PanicsWithValue(t, "socktable/rcu: Guard.Exit called more often than Enter", func() { g.Exit() })
}

// watchWaits installs a wait hook for the rest of the test and returns a
// channel that receives (without blocking the waiter) each time a
// Synchronize or a full Retire finds readers inside and is about to wait.
func watchWaits(t *testing.T) <-chan struct{} {
	waiting := make(chan struct{}, 1)
	rcu.SetWaitHook(func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})
	t.Cleanup(func() { rcu.SetWaitHook(nil) })
	return waiting
}
