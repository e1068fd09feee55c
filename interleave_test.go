package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// pauseAt runs f once, when d reaches point.
func pauseAt(d *socktable.Demux[tconn], point string, f func()) *bool {
	ran := new(bool)
	d.SetPause(func(p string) {
		if p == point && !*ran {
			*ran = true
			f()
		}
	})
	return ran
}

// Each transition, stopped at its midpoint, with a Deliver run there: the
// segment finds the flow's owner in exactly one place, the old one until
// the transition's linearization point and the new one after it.
func TestDemuxTransitionMidpoints(t *testing.T) {
	t.Run("timewait", func(t *testing.T) {
		h := newDemux(t, socktable.Options{})
		h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8}, false)
		c := h.established(1)
		data := seg(server, clientN(1), tuple.ACK, 1001, 0)
		ran := pauseAt(h.d, "timewait-entered", func() {
			res := h.d.Deliver(&data, 0, 0)
			require.Equal(t, socktable.ToConn, res.Outcome, "the entry is in; the connection still owns the flow")
			require.Same(t, c, res.Conn)
		})
		require.NoError(t, h.d.TimeWait(c.flow, c, timewait.State{RcvNxt: 1001, SndNxt: 1}))
		require.True(t, *ran)
		require.Equal(t, socktable.ReasonTimeWait, h.d.Deliver(&data, 0, 0).Reason)
	})
	t.Run("establish", func(t *testing.T) {
		h := newDemux(t, socktable.Options{})
		l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8}, false)
		acc, err := l.Register(accept.Unbound)
		require.NoError(t, err)
		iss := h.synTo(server, 1, socktable.ReasonSynQueued).Reply.Seq
		res := h.ack(server, 1, iss)
		c := &tconn{id: 1}
		data := seg(server, clientN(1), tuple.ACK, 1001, iss+1)
		ran := pauseAt(h.d, "establish-swapped", func() {
			got := h.d.Deliver(&data, 0, 0)
			require.Equal(t, socktable.ToConn, got.Outcome, "swapped: the connection owns the flow")
			require.Same(t, c, got.Conn)
			_, err := acc.TryAccept()
			require.ErrorIs(t, err, socktable.ErrEmpty, "not queued yet")
			require.Zero(t, l.SynQueueLen())
		})
		_, err = h.d.Establish(&res.Handshake, c)
		require.NoError(t, err)
		require.True(t, *ran)
		got, err := acc.TryAccept()
		require.NoError(t, err)
		require.Same(t, c, got.Conn)
	})
	t.Run("connect", func(t *testing.T) {
		h := newDemux(t, socktable.Options{EphemeralLow: 40000, EphemeralHigh: 40000})
		c := &tconn{id: 1}
		tp := tuple.MustNew("10.0.0.1:40000", "192.0.2.9:443")
		synack := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN | tuple.ACK}
		ran := pauseAt(h.d, "connect-bound", func() {
			require.Equal(t, socktable.ReasonNoSocket, h.d.Deliver(&synack, 0, 0).Reason, "not connected yet")
		})
		_, err := h.d.Connect(table.ConnectRequest{Family: 4, Local: tp.Local.Addr, Remote: tp.Remote}, c)
		require.NoError(t, err)
		require.True(t, *ran)
		require.Same(t, c, h.d.Deliver(&synack, 0, 0).Conn)
	})
	for _, migrate := range []bool{false, true} {
		name := "listener-close"
		if migrate {
			name += "-migrate"
		}
		t.Run(name, func(t *testing.T) {
			h := newDemux(t, socktable.Options{MigrateReq: migrate})
			l1 := h.listen("0.0.0.0", 80, socktable.ListenOptions{Backlog: 64}, true)
			l2 := h.listen("0.0.0.0", 80, socktable.ListenOptions{Backlog: 64}, true)
			if !migrate {
				o, err := l2.Close()
				require.NoError(t, err)
				require.Empty(t, o.Conns)
			}
			// Two requests of l1 (find flows that hash to it).
			var mine []int
			iss := map[int]uint32{}
			for i := 0; len(mine) < 2; i++ {
				res := h.synTo(server, i, socktable.ReasonSynQueued)
				if res.Listener == l1 {
					mine = append(mine, i)
					iss[i] = res.Reply.Seq
				}
			}
			var atMid socktable.Result[tconn]
			ran := pauseAt(h.d, "listener-unindexed", func() {
				// A new SYN no longer reaches l1.
				s := seg(server, clientN(1000), tuple.SYN, 5, 0)
				res := h.d.Deliver(&s, 0, 0)
				require.NotSame(t, l1, res.Listener)
				// The final ACK of one of its requests.
				atMid = h.ack(server, mine[0], iss[mine[0]])
			})
			o, err := l1.Close()
			require.NoError(t, err)
			require.True(t, *ran)
			if migrate {
				require.Equal(t, socktable.Completed, atMid.Outcome)
				require.Same(t, l2, atMid.Listener, "migrated to the member left")
				require.Empty(t, o.Requests)
				require.Equal(t, socktable.Completed, h.ack(server, mine[1], iss[mine[1]]).Outcome)
				return
			}
			// Without migration the request went with the Deliver
			// (reset), and the other came back from Close: neither lost.
			require.Equal(t, socktable.ReasonNoSocket, atMid.Reason)
			require.Equal(t, tuple.RST, atMid.Reply.Flags)
			require.Len(t, o.Requests, 1)
			require.Equal(t, clientN(mine[1]), o.Requests[0].Tuple.Remote.String())
		})
	}
}
