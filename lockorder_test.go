package socktable_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// gatedChecker holds connect()'s FlowChecker call — made with the port's
// stripe lock held — until the test lets it go.
type gatedChecker struct {
	inner   table.FlowChecker
	inClaim chan struct{}
	proceed chan struct{}
	abort   chan struct{} // closed when the test ends, so a failed test does not leave it holding the stripe
}

func (g *gatedChecker) ClaimFlow(t tuple.Tuple, explicitBind bool) table.FlowClaim {
	select {
	case g.inClaim <- struct{}{}:
	case <-g.abort:
	}
	select {
	case <-g.proceed:
	case <-g.abort:
	}
	return g.inner.ClaimFlow(t, explicitBind)
}

// within fails the test if done is not closed in time: a deadlock guard,
// not a wait for an interleaving (every step is ordered by channels).
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("deadlock: %s did not finish", what)
	}
}

var otherServer = tuple.MustEndpoint("192.0.2.2:80")

// expiryMargin is how late past its lifetime a TIME_WAIT entry may fire:
// a 60 s timer sits on a wheel level of 4.096 s granularity.
const expiryMargin = 5 * time.Second

// The lock order, tested as a deterministic interleaving of expiry,
// takeover and connect on one port and one TIME_WAIT shard:
//
//  1. a connect holds the port's stripe and is inside the FlowChecker;
//  2. expiry removes entry A, drops the shard's lock and, in OnExpire,
//     releases A's binding: it waits for the stripe;
//  3. the connect takes entry C over, which needs the shard's lock.
//
// Were OnExpire called under the shard's lock, 2 would hold it while
// waiting for the stripe, and 3 would wait for it while holding the
// stripe: a deadlock. Here both finish, and every binding is released
// exactly once.
func TestExpiryTakeoverConnectLockOrder(t *testing.T) {
	var gate *gatedChecker
	s := newStack(t, stackOptions{withFlows: true, reuse: timewait.ReuseOn, low: 40000, high: 40000, twShards: 1,
		checker: func(inner table.FlowChecker) table.FlowChecker {
			gate = &gatedChecker{inner: inner, inClaim: make(chan struct{}), proceed: make(chan struct{}), abort: make(chan struct{})}
			return gate
		}})
	t.Cleanup(func() { close(gate.abort) }) // runs before newStack's cleanup closes the tables
	connect := func(dst tuple.Endpoint) (table.ConnectResult, error) {
		type result struct {
			res table.ConnectResult
			err error
		}
		out := make(chan result, 1)
		go func() {
			r, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: dst})
			out <- result{r, err}
		}()
		<-gate.inClaim
		gate.proceed <- struct{}{}
		r := <-out
		return r.res, r.err
	}
	a, err := connect(serverEP)
	require.NoError(t, err)
	closeIntoTimeWait(t, s, a)
	s.clock.Advance(timewait.TimeWaitLen - 2*time.Second)
	c, err := connect(otherServer)
	require.NoError(t, err)
	require.Equal(t, a.Tuple.Local, c.Tuple.Local, "one port for both")
	closeIntoTimeWait(t, s, c)
	// A is due (its 60 s timer sits on a wheel level of 4 s granularity and
	// fires up to that late, never early); C is older than tcp_tw_reuse's
	// delay, and not due.
	s.clock.Advance(expiryMargin + 2*time.Second)

	// 1: a connect to C's destination, held inside the checker.
	connected := make(chan struct{})
	var b table.ConnectResult
	var connectErr error
	go func() {
		defer close(connected)
		b, connectErr = s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: otherServer})
	}()
	<-gate.inClaim

	// 2: expiry of A, held in OnExpire before it releases A's binding.
	expiring := make(chan struct{})
	s.onExpire = func(tp tuple.Tuple, owner *table.Binding) {
		if tp != a.Tuple || owner != a.Binding {
			t.Errorf("expired %v (owner %p), want A %v (%p)", tp, owner, a.Tuple, a.Binding)
		}
		close(expiring)
	}
	expired := make(chan struct{})
	var fired int
	go func() {
		defer close(expired)
		fired = s.timeWait.Advance()
	}()
	within(t, expiring, "expiry up to OnExpire")

	// 3: let the connect go on: it takes C over under the shard's lock
	// while expiry waits for the stripe the connect holds.
	gate.proceed <- struct{}{}
	within(t, connected, "the connect")
	within(t, expired, "the expiry")

	require.NoError(t, connectErr)
	require.Equal(t, 1, fired)
	require.True(t, b.Reused, "C was taken over")
	require.Equal(t, c.Tuple, b.Tuple)
	require.Equal(t, table.StateReleased, a.Binding.State(), "A's binding released by expiry")
	require.Equal(t, table.StateReleased, c.Binding.State(), "C's binding released by the takeover")
	require.Zero(t, s.timeWait.Len())
	require.Equal(t, table.StateConnected, b.Binding.State())
}

// Expiry has removed entry A and is about to release A's binding when a
// connect asks for A's tuple: the tuple is free (no entry), the new
// connection takes it, and the late release leaves the new connection's
// hold alone.
func TestExpiryReleaseAfterConnectTookTheTuple(t *testing.T) {
	s := newStack(t, stackOptions{withFlows: true, low: 40000, high: 40000})
	a, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.NoError(t, err)
	closeIntoTimeWait(t, s, a)
	s.clock.Advance(timewait.TimeWaitLen + expiryMargin)

	inHook, release := make(chan struct{}), make(chan struct{})
	s.onExpire = func(tuple.Tuple, *table.Binding) {
		close(inHook)
		<-release
	}
	expired := make(chan struct{})
	go func() {
		defer close(expired)
		s.timeWait.Advance()
	}()
	within(t, inHook, "expiry up to OnExpire")
	b, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.NoError(t, err, "the entry is gone: its tuple is free")
	require.Equal(t, a.Tuple, b.Tuple)
	require.False(t, b.Reused)
	close(release)
	within(t, expired, "the expiry")

	require.Equal(t, table.StateReleased, a.Binding.State())
	require.Equal(t, table.StateConnected, b.Binding.State())
	_, err = s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.ErrorIs(t, err, table.ErrAddrNotAvail, "the new connection keeps the tuple")
}
