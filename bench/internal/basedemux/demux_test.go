package basedemux

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/tuple"
)

type conn struct{ id int }

func seg(t tuple.Tuple, flags tuple.Flags, seq, ack uint32) tuple.Segment {
	return tuple.Segment{Tuple: t, Proto: tuple.ProtoTCP, Version: 4, Flags: flags, Seq: seq, Ack: ack}
}

// TestLifecycle walks one flow of every design through the paths socksim
// and the benchmarks use: handshake, establish, TIME_WAIT and its expiry,
// abort, connect with its port search, and a bound connect over TIME_WAIT.
func TestLifecycle(t *testing.T) {
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			d, err := New[conn](impl, 8)
			require.NoError(t, err)
			require.Equal(t, impl, d.Impl())
			require.True(t, d.Listen(tuple.Endpoint{Port: 443}, 1460, 65535))
			require.False(t, d.Listen(tuple.Endpoint{Port: 443}, 1460, 65535), "one listener per endpoint")
			flow := tuple.MustNew("192.0.2.1:443", "10.0.0.1:40000")

			syn := seg(flow, tuple.SYN, 100, 0)
			res := d.Deliver(&syn)
			require.Equal(t, socktable.ReasonSynQueued, res.Reason)
			ack := seg(flow, tuple.ACK, 101, res.Reply.Seq+1)
			res = d.Deliver(&ack)
			require.Equal(t, socktable.Completed, res.Outcome)
			c := &conn{1}
			require.True(t, d.Establish(flow, c))
			require.False(t, d.Establish(flow, c), "established once")
			data := seg(flow, tuple.ACK, 101, 1)
			require.Same(t, c, d.Deliver(&data).Conn)

			require.True(t, d.TimeWait(flow, c, TimeWaitState{RcvNxt: 7, SndNxt: 9, Window: 100}, 60*time.Second))
			require.False(t, d.TimeWait(flow, c, TimeWaitState{}, 0), "the connection is gone")
			res = d.Deliver(&data)
			require.Equal(t, socktable.ReasonTimeWait, res.Reason)
			require.Equal(t, socktable.Reply{Flags: tuple.ACK, Seq: 9, Ack: 7, Window: 100}, res.Reply)
			require.Equal(t, 1, d.TimeWaits())
			require.Zero(t, d.Expire(59*time.Second))
			require.Equal(t, 1, d.Expire(60*time.Second))
			require.Equal(t, socktable.ReasonNoSocket, d.Deliver(&data).Reason)

			// Connect: ports in order from the offset, past those taken.
			local, up := tuple.MustAddr("192.0.2.1"), tuple.MustEndpoint("198.51.100.1:80")
			a, b, c2 := &conn{2}, &conn{3}, &conn{4}
			ta, ok := d.Connect(local, up, 1000, 1002, 0, a)
			require.True(t, ok)
			require.Equal(t, uint16(1000), ta.Local.Port)
			tb, ok := d.Connect(local, up, 1000, 1002, 0, b)
			require.True(t, ok)
			require.Equal(t, uint16(1001), tb.Local.Port)
			require.True(t, d.TimeWait(tb, b, TimeWaitState{}, time.Hour))
			tc, ok := d.Connect(local, up, 1000, 1002, 1, c2)
			require.True(t, ok)
			require.Equal(t, uint16(1002), tc.Local.Port, "the TIME_WAIT port is passed over")
			_, ok = d.Connect(local, up, 1000, 1002, 0, &conn{5})
			require.False(t, ok, "every port's tuple taken")
			require.True(t, d.Abort(ta, a))
			require.False(t, d.Abort(ta, a))
			require.True(t, d.ConnectTuple(tb, &conn{6}), "a bound connect takes the TIME_WAIT tuple over")
			require.Zero(t, d.TimeWaits())
			require.False(t, d.ConnectTuple(tc, &conn{7}), "not over a connection")
			require.Equal(t, 2, d.Entries())
		})
	}
	_, err := New[conn]("btree", 1)
	require.Error(t, err)
}
