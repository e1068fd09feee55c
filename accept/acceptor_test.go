package accept

import (
	"context"
	"testing"
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

// An Accept that took a connection while its acceptor's Close ran does
// not hand it out: Close waits for it to put the connection back, with
// its backlog credit, into the global queue, and a sleeping acceptor is
// woken for it. (Before the fix, Accept returned the connection after
// Close had returned.)
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

	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	<-a.done // Close has marked the acceptor closed
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a take held a connection", err)
	default: // it waits for the take: a.taking cannot drop to 0 before release
	}
	close(release)
	r := <-res
	require.ErrorIs(t, r.err, ErrClosed, "Accept returned %d after its acceptor's Close", r.v)
	require.NoError(t, <-closed)
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
	closed := make(chan error, 1)
	b.afterTake = func() {
		b.afterTake = nil
		go func() { closed <- b.Close() }()
		<-b.done // marked closed; Close waits for this take
	}
	_, err = b.TryAccept()
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, <-closed)
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

// The acceptor's words other acceptors' goroutines never write fill two
// cache lines of their own.
func TestAcceptorLayout(t *testing.T) {
	require.Equal(t, uintptr(2*64), unsafe.Sizeof(Acceptor[*int]{}))
	require.Zero(t, unsafe.Offsetof(Acceptor[*int]{}.taking))
}
