package socktable_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

type conn struct{ id int }

// stack is the server-and-client side composition the join tests
// need: one Hasher and one clock for every table, a TIME_WAIT table whose
// entries own their bindings and release them when they expire, and (if
// withFlows) connect()'s FlowChecker over the established and TIME_WAIT
// tables.
type stack struct {
	hasher      *tuple.Hasher
	clock       *timewait.ManualClock
	established *table.Established[*conn]
	timeWait    *timewait.Table[*table.Binding]
	ports       *table.Ports
	flows       *socktable.Flows[*conn]
	// onExpire, if set, runs in OnExpire before the binding is released:
	// a test's hold on the expiry path.
	onExpire func(tuple.Tuple, *table.Binding)
}

type stackOptions struct {
	withFlows bool
	reuse     timewait.ReuseMode
	low, high uint16 // ephemeral range
	checker   func(table.FlowChecker) table.FlowChecker
	twShards  int
}

func newStack(t *testing.T, o stackOptions) *stack {
	s := &stack{hasher: tuple.NewHasher(), clock: &timewait.ManualClock{}}
	var err error
	s.established, err = table.NewEstablished[*conn](table.EstablishedOptions{Hasher: s.hasher})
	require.NoError(t, err)
	s.timeWait, err = timewait.NewTable(timewait.TableOptions[*table.Binding]{
		Hasher: s.hasher, Clock: s.clock, Reuse: o.reuse, Shards: o.twShards,
		OnExpire: func(tp tuple.Tuple, b *table.Binding) {
			if s.onExpire != nil {
				s.onExpire(tp, b)
			}
			if err := s.ports.Release(b); err != nil {
				t.Errorf("releasing the binding of expired %v: %v", tp, err)
			}
		},
	})
	require.NoError(t, err)
	opts := table.PortsOptions{Hasher: s.hasher, EphemeralLow: o.low, EphemeralHigh: o.high}
	if o.withFlows {
		s.flows, err = socktable.NewFlows(s.established, s.timeWait)
		require.NoError(t, err)
		opts.Flows = s.flows
		if o.checker != nil {
			opts.Flows = o.checker(s.flows)
		}
	}
	s.ports, err = table.NewPorts(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.timeWait.Close()
		_ = s.ports.Close()
	})
	return s
}

var (
	clientAddr = tuple.MustAddr("10.0.0.1")
	serverEP   = tuple.MustEndpoint("192.0.2.1:80")
)

// timeWaitState is a closing connection's state with timestamps, so that
// tcp_tw_reuse may take it over.
func timeWaitState(s *stack) timewait.State {
	return timewait.State{RcvNxt: 1000, SndNxt: 5000, RcvWnd: 65535, HasTimestamps: true,
		TSRecent: 77, TSRecentStamp: s.clock.Now()}
}

// closeIntoTimeWait parks a connection's binding in TIME_WAIT the way a
// stack does: the entry owns the binding.
func closeIntoTimeWait(t *testing.T, s *stack, res table.ConnectResult) {
	require.NoError(t, s.ports.TimeWait(res.Binding))
	require.NoError(t, s.timeWait.Enter(res.Tuple, timeWaitState(s), res.Binding))
}

// An expired TIME_WAIT entry gives its port back: its entry owns the
// binding Ports.TimeWait parked, and expiry hands it to OnExpire, which
// releases it. (Before, the binding stayed in TIME_WAIT forever: the next
// Bind got ErrAddrInUse and, without Flows, ConnectAny ErrAddrNotAvail.)
func TestTimeWaitExpiryReleasesItsPort(t *testing.T) {
	for _, withFlows := range []bool{false, true} {
		t.Run(map[bool]string{false: "flows=nil", true: "flows=tables"}[withFlows], func(t *testing.T) {
			s := newStack(t, stackOptions{withFlows: withFlows, low: 40000, high: 40000})
			res, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
			require.NoError(t, err)
			closeIntoTimeWait(t, s, res)
			_, err = s.ports.Bind(table.BindRequest{Family: 4, Addr: clientAddr, Port: 40000})
			require.ErrorIs(t, err, table.ErrAddrInUse, "the TIME_WAIT entry holds the port")

			s.clock.Advance(timewait.TimeWaitLen + expiryMargin)
			require.Equal(t, 1, s.timeWait.Advance())
			require.Equal(t, table.StateReleased, res.Binding.State(), "expiry released the binding")

			again, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
			require.NoError(t, err, "the one port of the range is free again")
			require.Equal(t, res.Tuple, again.Tuple)
			require.NoError(t, s.ports.Release(again.Binding))
			b, err := s.ports.Bind(table.BindRequest{Family: 4, Addr: clientAddr, Port: 40000})
			require.NoError(t, err, "and bind() may take it")
			require.NoError(t, s.ports.Release(b))
		})
	}
}

// Connect through Flows: a TIME_WAIT tuple is taken over in the same call
// that picks the port, the connection gets the entry's ISN and timestamp,
// the entry is gone and its binding released exactly once (expiry later
// finds nothing to hand out).
func TestConnectAnyTakesOverThroughFlows(t *testing.T) {
	s := newStack(t, stackOptions{withFlows: true, reuse: timewait.ReuseOn, low: 40000, high: 40000})
	expired := 0
	s.onExpire = func(tuple.Tuple, *table.Binding) { expired++ }
	res, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.NoError(t, err)
	closeIntoTimeWait(t, s, res)

	_, err = s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.ErrorIs(t, err, table.ErrAddrNotAvail, "within tcp_tw_reuse's delay the entry stays")

	s.clock.Advance(timewait.ReuseDelay + time.Millisecond)
	got, err := s.ports.ConnectAny(table.ConnectRequest{Family: 4, Local: clientAddr, Remote: serverEP})
	require.NoError(t, err)
	require.True(t, got.Reused)
	require.Equal(t, res.Tuple, got.Tuple)
	require.Equal(t, uint32(5000+65537), got.Reuse.WriteSeq)
	require.Equal(t, uint32(77), got.Reuse.TSRecent)
	_, ok := s.timeWait.Lookup(res.Tuple)
	require.False(t, ok, "the entry went in the same step")
	require.Equal(t, table.StateReleased, res.Binding.State())

	s.clock.Advance(2 * timewait.TimeWaitLen)
	require.Zero(t, s.timeWait.Advance())
	require.Zero(t, expired, "the taken-over entry's binding was handed out once, to Ports")
	require.Equal(t, table.StateConnected, got.Binding.State())
}

// An established connection holds its tuple against Connect from a bound
// port; NewFlows refuses tables that hash with different Hashers.
func TestFlowsEstablishedAndHashers(t *testing.T) {
	s := newStack(t, stackOptions{withFlows: true})
	b, err := s.ports.Bind(table.BindRequest{Family: 4, Addr: clientAddr, Port: 5000, ReuseAddr: true})
	require.NoError(t, err)
	flow := tuple.Tuple{Local: tuple.Endpoint{Addr: clientAddr, Port: 5000}, Remote: serverEP}
	require.NoError(t, s.established.Insert(flow, &conn{1}))
	_, err = s.ports.Connect(b, clientAddr, serverEP)
	require.ErrorIs(t, err, table.ErrAddrNotAvail)
	require.Equal(t, table.FlowInUse, s.flows.ClaimFlow(flow, true).Verdict)
	require.Equal(t, table.FlowFree, s.flows.ClaimFlow(flow.Reverse(), true).Verdict)

	other, err := table.NewEstablished[*conn](table.EstablishedOptions{})
	require.NoError(t, err)
	_, err = socktable.NewFlows(other, s.timeWait)
	require.ErrorIs(t, err, socktable.ErrInvalid)
	_, err = socktable.NewFlows[*conn](nil, s.timeWait)
	require.ErrorIs(t, err, socktable.ErrInvalid)
}
