package accept

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// holdTakes makes a's takes stop between the take that found a connection
// and the closed check: taken is closed when one gets there, and it goes
// on when the test closes the returned channel. Call before a is used.
func holdTakes(a *Acceptor[int]) (taken <-chan struct{}, release chan<- struct{}) {
	tk, rel := make(chan struct{}), make(chan struct{})
	a.afterTake = func() {
		a.afterTake = nil // only the first
		close(tk)
		<-rel
	}
	return tk, rel
}

// acceptAsync runs a.Accept in a goroutine and delivers its result.
func acceptAsync(ctx context.Context, a *Acceptor[int]) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		v, err := a.Accept(ctx)
		ch <- acceptResult{v, err}
	}()
	return ch
}

type acceptResult struct {
	v   int
	err error
}

// An Accept that took a connection while its acceptor's Close ran does
// not hand it out: it puts the connection back, with its backlog credit,
// into the global queue, and a sleeping acceptor is woken for it. (Before
// the fix, Accept returned the connection after Close had returned.)
func TestAcceptorCloseDuringTake(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 1, Backlog: 0}) // holds one connection
	a, err := s.Register(0)
	require.NoError(t, err)
	other, err := s.Register(Unbound)
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(0, 7))
	taken, release := holdTakes(a)
	res := acceptAsync(context.Background(), a)
	<-taken
	otherRes := acceptAsync(context.Background(), other)
	waitParked(t, s, 1) // other found nothing: a holds the connection

	require.NoError(t, a.Close())
	close(release)
	r := <-res
	require.ErrorIs(t, r.err, ErrClosed, "Accept returned %d after its acceptor's Close", r.v)
	r = <-otherRes
	require.NoError(t, r.err, "the connection put back wakes a sleeping acceptor")
	require.Equal(t, 7, r.v)

	// The credit went with the connection: one Enqueue fits again, not two.
	require.NoError(t, s.TryEnqueue(0, 8))
	require.ErrorIs(t, s.TryEnqueue(0, 9), ErrBacklog)
	v, err := other.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 8, v)
	require.Equal(t, int64(1), s.freeCredits())
}

// The same race with the listener's Close: the connection is not handed
// out, and Close hands it back for a reset. (Before the fix, Accept
// returned it, and Close did not.)
func TestAcceptorListenerCloseDuringTake(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 4})
	a, err := s.Register(1)
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(1, 7))
	require.NoError(t, s.TryEnqueue(0, 8)) // no acceptor on shard 0: global
	taken, release := holdTakes(a)
	res := acceptAsync(context.Background(), a)
	<-taken

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-s.closedCh
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a take held a connection", err)
	default:
	}
	close(release)
	r := <-res
	require.ErrorIs(t, r.err, ErrClosed, "Accept returned %d after the listener's Close", r.v)
	require.NoError(t, <-closed)
	require.Equal(t, []int{8, 7}, s.Drain(), "the global queue's, then the one put back")
}

// A second Close of the listener returns only once the first has
// finished, so a Drain after it finds the connection a racing take put
// back. (It used to return ErrClosed at once, and a Drain then missed it.)
func TestShardedSecondCloseWaitsForTheFirst(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 4})
	a, err := s.Register(1)
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(1, 7))
	taken, release := holdTakes(a)
	res := acceptAsync(context.Background(), a)
	<-taken
	first := make(chan error, 1)
	go func() { first <- s.Close() }()
	<-s.closedCh
	second := make(chan []int, 1)
	go func() {
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
		second <- s.Drain()
	}()
	for range 100 { // give the second Close every chance to return early
		runtime.Gosched()
	}
	select {
	case d := <-second:
		t.Fatalf("the second Close returned (Drain %v) while the first waited", d)
	default:
	}
	close(release)
	require.ErrorIs(t, (<-res).err, ErrClosed)
	require.NoError(t, <-first)
	require.Equal(t, []int{7}, <-second)
}

// TryAccept tells an empty listener from a closed one, and after Close
// hands out nothing, even with connections queued. (Before the fix,
// TryAccept returned a queued connection after its acceptor's Close.)
func TestAcceptorTryAcceptAfterClose(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 1, Backlog: 4})
	a, err := s.Register(Unbound)
	require.NoError(t, err)
	b, err := s.Register(Unbound)
	require.NoError(t, err)
	_, err = a.TryAccept()
	require.ErrorIs(t, err, ErrEmpty)
	require.NotErrorIs(t, err, ErrClosed)
	require.NoError(t, s.TryEnqueue(0, 1))
	require.NoError(t, a.Close())
	v, err := a.TryAccept()
	require.ErrorIs(t, err, ErrClosed, "TryAccept returned %d after Close", v)
	_, err = a.Accept(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	v, err = b.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 1, v)

	// A TryAccept whose take overlaps Close puts the connection back.
	require.NoError(t, s.TryEnqueue(0, 2))
	b.afterTake = func() {
		b.afterTake = nil
		require.NoError(t, b.Close()) // on the test goroutine: TryAccept runs the hook
	}
	_, err = b.TryAccept()
	require.ErrorIs(t, err, ErrClosed)
	require.Equal(t, 1, s.Len(), "the connection is back in the listener")
	c, err := s.Register(Unbound)
	require.NoError(t, err)
	v, err = c.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 2, v)

	require.ErrorIs(t, a.Close(), ErrClosed)
	require.NoError(t, s.Close())
	_, err = c.TryAccept()
	require.ErrorIs(t, err, ErrClosed, "closed listener")
}

// An Acceptor fills a 128-byte size class, so that no two acceptors share
// a cache line.
func TestAcceptorLayout(t *testing.T) {
	require.Equal(t, uintptr(CacheLinePad), unsafe.Sizeof(Acceptor[*int]{}))
}

// A bound acceptor takes its shard's local queue, then the global one; an
// unbound one the global queue, then any local one.
func TestAcceptorOrder(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 3, Backlog: 100})
	b0, _ := s.Register(0)
	require.NoError(t, s.TryEnqueue(1, 10)) // no acceptor on 1: global
	require.NoError(t, s.TryEnqueue(0, 20)) // local 0
	require.NoError(t, s.TryEnqueue(0, 21))
	require.Equal(t, 2, s.ShardDepth(0))
	require.Equal(t, 0, s.ShardDepth(1))

	u, _ := s.Register(Unbound)
	v, _ := u.TryAccept()
	require.Equal(t, 10, v, "unbound: global first")
	v, _ = u.TryAccept()
	require.Equal(t, 20, v, "then a local queue")
	v, _ = b0.TryAccept()
	require.Equal(t, 21, v)
	_, err := b0.TryAccept()
	require.ErrorIs(t, err, ErrEmpty)
	require.Zero(t, s.Len())
}

// A blocked Accept wakes for an Enqueue, and an idle one is never woken.
func TestAcceptorWakes(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	a, _ := s.Register(0)
	idle, _ := s.Register(1)
	ctx := context.Background()
	res := acceptAsync(ctx, a)
	idleCtx, cancelIdle := context.WithCancel(ctx)
	idleRes := acceptAsync(idleCtx, idle)
	waitParked(t, s, 2)
	require.NoError(t, s.TryEnqueue(0, 7))
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, 7, r.v)
	require.Equal(t, uint64(1), a.wakeups, "one wake-up for one connection")
	cancelIdle()
	r = <-idleRes
	require.ErrorIs(t, r.err, context.Canceled)
	require.Zero(t, idle.wakeups, "an idle acceptor is not woken")
	require.Zero(t, s.parked.Load())
}

// When the last acceptor of a shard leaves, its queued connections move to
// the global queue and a sleeping acceptor elsewhere takes them.
func TestAcceptorLastOfShardLeaves(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	leaving, _ := s.Register(0)
	other, _ := s.Register(1)
	require.NoError(t, s.TryEnqueue(0, 1))
	require.NoError(t, s.TryEnqueue(0, 2))
	res := acceptAsync(context.Background(), other)
	waitParked(t, s, 1)
	require.NoError(t, leaving.Close())
	require.ErrorIs(t, leaving.Close(), ErrClosed)
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, 1, r.v)
	v, err := other.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 2, v)
	require.Zero(t, s.ShardDepth(0))
	// The shard has no acceptor now: new connections go global.
	require.NoError(t, s.TryEnqueue(0, 3))
	require.Zero(t, s.ShardDepth(0))
	v, _ = other.TryAccept()
	require.Equal(t, 3, v)
	_, err = leaving.Accept(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

// An Accept whose context ends after a waker chose it passes the wake-up
// on, so the connection is not left with everyone asleep.
func TestAcceptorCancelledWakePassesOn(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 1, Backlog: 10})
	a, _ := s.Register(Unbound)
	b, _ := s.Register(Unbound)
	ctx, cancel := context.WithCancel(context.Background())
	resA := acceptAsync(ctx, a)
	waitParked(t, s, 1)
	resB := acceptAsync(context.Background(), b)
	waitParked(t, s, 2)
	// Take a off its list as an Enqueue would, with no connection yet,
	// then cancel it: its unpark must hand the wake-up to b.
	s.mu.Lock()
	s.wakeLocked(nil)
	s.mu.Unlock()
	cancel()
	r := <-resA
	if r.err == nil { // it saw the wake-up first: looked, found nothing, parked again, then cancelled
		t.Fatalf("Accept returned %d with nothing queued", r.v)
	}
	require.True(t, errors.Is(r.err, context.Canceled))
	require.NoError(t, s.TryEnqueue(0, 42))
	rb := <-resB
	require.NoError(t, rb.err)
	require.Equal(t, 42, rb.v)
}

// A bound acceptor does not take from a shard that has acceptors of its
// own (locality), but does from one left with none.
func TestAcceptorBoundStealsOnlyOrphans(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 2, Backlog: 10})
	a0, _ := s.Register(0)
	a1, _ := s.Register(1)
	require.NoError(t, s.TryEnqueue(1, 5))
	_, err := a0.TryAccept()
	require.ErrorIs(t, err, ErrEmpty, "shard 1's connection is for shard 1's acceptors")
	v, err := a1.TryAccept()
	require.NoError(t, err)
	require.Equal(t, 5, v)
}

// An Enqueue's wake-up can reach an acceptor that finds the ring's head
// claimed by an earlier, unfinished enqueue and goes back to sleep; when
// that enqueue finishes, its own wake-up brings one acceptor for two
// connections. The acceptor that takes the first passes a wake-up on, so
// the second is not left with everyone asleep.
func TestAcceptorWakeupPassedOnPastInFlightHead(t *testing.T) {
	s := newSharded(t, ShardedOptions{Shards: 1, Backlog: 10})
	x, _ := s.Register(Unbound)
	y, _ := s.Register(Unbound)
	resX := acceptAsync(context.Background(), x)
	waitParked(t, s, 1)
	resY := acceptAsync(context.Background(), y)
	waitParked(t, s, 2)

	require.True(t, s.acquire(0)) // what Enqueue does before it claims
	publish, err := s.global.Claim()
	require.NoError(t, err)
	require.NoError(t, s.TryEnqueue(0, 2)) // behind the claimed head: wakes x, which finds nothing
	require.Equal(t, int32(1), s.parked.Load())
	waitParked(t, s, 2) // x is back asleep
	publish(1)
	s.wakeFor(nil) // the first enqueue's wake-up, as Enqueue would send it

	watchdog := time.After(10 * time.Second) // bounds a failure only
	got := map[int]bool{}
	for range 2 {
		select {
		case r := <-resX:
			require.NoError(t, r.err)
			got[r.v] = true
		case r := <-resY:
			require.NoError(t, r.err)
			got[r.v] = true
		case <-watchdog:
			t.Fatalf("a connection was left queued with an acceptor asleep (got %v)", got)
		}
	}
	require.Equal(t, map[int]bool{1: true, 2: true}, got)
}
