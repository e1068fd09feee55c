//go:build !race

package accept_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/accept"
)

type conn struct{ id int }

// TryEnqueue, TryDequeue, Enqueue with room and Dequeue with an item
// ready allocate nothing, for a pointer type (what an accept queue carries) and a value
// type.
func TestQueueAllocatesNothing(t *testing.T) {
	q, err := accept.NewQueue[*conn](8)
	require.NoError(t, err)
	c := &conn{id: 1}
	ctx := context.Background()
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		if q.TryEnqueue(c) != nil {
			panic("TryEnqueue failed")
		}
		if _, ok := q.TryDequeue(); !ok {
			panic("TryDequeue found nothing")
		}
	}), "TryEnqueue, TryDequeue")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		if q.TryEnqueue(c) != nil {
			panic("TryEnqueue failed")
		}
		if _, err := q.Dequeue(ctx); err != nil {
			panic(err)
		}
	}), "Dequeue with an item ready")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		if q.Enqueue(ctx, c) != nil {
			panic("Enqueue failed")
		}
		if _, err := q.Dequeue(ctx); err != nil {
			panic(err)
		}
	}), "Enqueue with room")

	for range 8 {
		require.NoError(t, q.TryEnqueue(c))
	}
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		if q.TryEnqueue(c) == nil { // full
			panic("TryEnqueue on a full queue succeeded")
		}
		q.Len()
	}), "TryEnqueue on a full queue")

	v, err := accept.NewQueue[[3]uint64](4)
	require.NoError(t, err)
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		v.TryEnqueue([3]uint64{1, 2, 3})
		v.Dequeue(ctx)
	}), "value type")
}

// Parking and waking a consumer allocates nothing once a waiter has been
// pooled.
func TestQueueAllocParkWake(t *testing.T) {
	q, err := accept.NewQueue[*conn](8)
	require.NoError(t, err)
	parked := make(chan struct{}, 1)
	q.SetHooks(accept.Hooks{Park: func(bool) { parked <- struct{}{} }})
	got := make(chan *conn)
	go func() {
		for {
			c, err := q.Dequeue(context.Background())
			if err != nil {
				close(got)
				return
			}
			got <- c
		}
	}()
	c := &conn{id: 1}
	// A lost wake-up fails the test rather than hang it (within would
	// allocate a timer in the measured loop).
	watchdog := time.AfterFunc(10*time.Second, func() { panic("TestQueueAllocParkWake: a wake-up was lost") })
	defer watchdog.Stop()
	round := func() {
		<-parked
		if q.TryEnqueue(c) != nil {
			panic("TryEnqueue failed")
		}
		if <-got != c {
			panic("wrong item")
		}
	}
	round() // pool a waiter
	require.Zero(t, testing.AllocsPerRun(100, round), "park and wake")
	q.Close()
	within(t, got, "the consumer to see Close")
}
