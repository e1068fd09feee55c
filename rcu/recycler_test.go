package rcu_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

func TestNewRecyclerLimit(t *testing.T) {
	d := rcu.NewDomain()
	for _, limit := range []int{0, -1} {
		r, err := rcu.NewRecycler[int](d, limit)
		require.ErrorIs(t, err, rcu.ErrCapacity)
		require.Nil(t, r)
	}
}

func TestReuseWaitsForReadersThatMayHoldTheObject(t *testing.T) {
	d := rcu.NewDomain()
	r, err := rcu.NewRecycler[int](d, 8)
	require.NoError(t, err)

	g := d.Enter() // may have loaded object 1
	r.Retire(1)
	for range 5 {
		_, ok := r.Reuse()
		require.False(t, ok, "object handed back while a reader that may hold it is inside")
	}
	require.Equal(t, 1, r.Len())

	late := d.Enter() // began after the retirement: cannot hold object 1
	g.Exit()
	x, ok := r.Reuse()
	require.True(t, ok, "a reader that entered after Retire must not delay reuse")
	require.Equal(t, 1, x)
	late.Exit()
	require.Zero(t, r.Len())
	_, ok = r.Reuse()
	require.False(t, ok)
}

func TestReuseIsFIFOAndLosesNothing(t *testing.T) {
	d := rcu.NewDomain()
	r, err := rcu.NewRecycler[int](d, 100)
	require.NoError(t, err)
	for i := range 100 {
		r.Retire(i)
	}
	for i := range 100 {
		x, ok := r.Reuse()
		require.True(t, ok)
		require.Equal(t, i, x)
	}
	require.Zero(t, r.Dropped())
	// Wrap around the ring several times.
	for round := range 5 {
		for i := range 70 {
			r.Retire(round*1000 + i)
		}
		for i := range 70 {
			x, ok := r.Reuse()
			require.True(t, ok)
			require.Equal(t, round*1000+i, x)
		}
	}
}

func TestFullRecyclerWaitsThenDrops(t *testing.T) {
	d := rcu.NewDomain()
	r, err := rcu.NewRecycler[int](d, 2)
	require.NoError(t, err)
	g := d.Enter()
	r.Retire(1)
	r.Retire(2)

	waiting := watchWaits(t)
	done := make(chan struct{})
	go func() {
		r.Retire(3) // full, and object 1 may still be held: must wait
		close(done)
	}()
	<-waiting
	<-waiting
	select {
	case <-done:
		t.Fatal("Retire on a full recycler did not wait for the grace period")
	default:
	}
	g.Exit()
	<-done
	require.EqualValues(t, 1, r.Dropped(), "the oldest, safe object went to the GC")
	require.Equal(t, 2, r.Len())
	x, ok := r.Reuse()
	require.True(t, ok)
	require.Equal(t, 2, x)
}
