package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// flowState is the sequential model's view of one client flow.
type flowState uint8

const (
	stNone flowState = iota
	stRequest
	stCookie // a SYN answered with a cookie: no state in the Demux
	stConn
	stTimeWait
)

// modelFlow is one client flow of the model: plain fields a map holds.
type modelFlow struct {
	state  flowState
	gen    uint32 // connection attempt: a new one starts above the last
	iss    uint32 // our ISN, as the SYN-ACK told it
	acked  bool   // the final ACK met a full accept queue
	conn   *tconn
	rcvNxt uint32 // TIME_WAIT's
}

func (f *modelFlow) irs(i int) uint32 { return uint32(i)<<20 + f.gen<<8 }

// demuxModel drives a Demux (one listener with a small backlog, a few
// client flows) with random segments and lifecycle calls, and checks each
// answer against a plain sequential stack model: a map of flow states and
// a FIFO accept queue.
type demuxModel struct {
	h        *demuxHarness
	l        *socktable.Listener[tconn]
	acc      *accept.Acceptor[socktable.Accepted[tconn]]
	flows    []modelFlow
	queue    []*tconn // accept queue, FIFO
	backlog  int
	cookies  bool // a cookie was sent: ACKs to the listener are checked
	abort    bool
	nextConn int
}

func (m *demuxModel) requests() int {
	n := 0
	for i := range m.flows {
		if m.flows[i].state == stRequest {
			n++
		}
	}
	return n
}

func (m *demuxModel) acceptFull() bool { return len(m.queue) > m.backlog }

func (m *demuxModel) deliver(i int, flags tuple.Flags, seq, ack uint32) socktable.Result[tconn] {
	s := seg(server, clientN(i), flags, seq, ack)
	return m.h.d.Deliver(&s, 0, 0)
}

func (m *demuxModel) syn(t *rapid.T, i int) {
	f := &m.flows[i]
	res := m.deliver(i, tuple.SYN, f.irs(i), 0)
	switch f.state {
	case stConn:
		require.Equal(t, socktable.ToConn, res.Outcome)
		require.Same(t, f.conn, res.Conn)
	case stRequest:
		require.Equal(t, socktable.ReasonRequest, res.Reason)
		require.Equal(t, tuple.SYN|tuple.ACK, res.Reply.Flags)
		require.Equal(t, f.iss, res.Reply.Seq, "the retransmitted SYN-ACK")
	case stTimeWait:
		// A SYN above rcv_nxt: the listener takes the tuple over, with
		// TIME_WAIT's ISN (snd_nxt + 65537), ignoring the SYN queue's
		// limit, but not a full accept queue.
		if m.acceptFull() {
			require.Equal(t, socktable.ReasonListenOverflow, res.Reason)
			return
		}
		require.Equal(t, socktable.ReasonSynQueued, res.Reason)
		require.Equal(t, sndNxtOf(f)+65537, res.Reply.Seq)
		f.state, f.iss, f.acked = stRequest, res.Reply.Seq, false
	default:
		switch {
		case m.acceptFull():
			require.Equal(t, socktable.ReasonListenOverflow, res.Reason)
			require.Equal(t, socktable.Dropped, res.Outcome)
		case m.requests() >= m.backlog:
			require.Equal(t, socktable.ReasonSynCookie, res.Reason)
			f.state, f.iss = stCookie, res.Reply.Seq
			m.cookies = true
		default:
			require.Equal(t, socktable.ReasonSynQueued, res.Reason)
			f.state, f.iss, f.acked = stRequest, res.Reply.Seq, false
		}
		if res.Outcome == socktable.Send {
			require.Equal(t, f.irs(i)+1, res.Reply.Ack)
		}
	}
}

func sndNxtOf(f *modelFlow) uint32 { return f.iss + 1000 }

func (m *demuxModel) ack(t *rapid.T, i int, good bool) {
	f := &m.flows[i]
	ackNo := f.iss + 1
	if !good {
		ackNo += 77
	}
	res := m.deliver(i, tuple.ACK, f.irs(i)+1, ackNo)
	switch f.state {
	case stConn:
		require.Equal(t, socktable.ToConn, res.Outcome)
		require.Same(t, f.conn, res.Conn)
	case stTimeWait:
		require.Equal(t, socktable.ReasonTimeWait, res.Reason)
	case stRequest, stCookie:
		if !good {
			if f.state == stRequest {
				require.Equal(t, socktable.ReasonBadACK, res.Reason)
			} else {
				require.Equal(t, socktable.ReasonBadCookie, res.Reason)
			}
			require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: ackNo}, res.Reply)
			return
		}
		if m.acceptFull() {
			require.Equal(t, socktable.ReasonListenOverflow, res.Reason)
			if f.state == stRequest && m.abort {
				require.Equal(t, tuple.RST, res.Reply.Flags)
				f.state = stNone
				f.gen++
			} else {
				require.Equal(t, socktable.Dropped, res.Outcome)
				f.acked = f.state == stRequest
			}
			return
		}
		require.Equal(t, socktable.Completed, res.Outcome)
		require.Equal(t, f.state == stCookie, res.Handshake.Cookie)
		require.Equal(t, f.iss, res.Handshake.ISS)
		m.nextConn++
		c := &tconn{id: m.nextConn}
		flow, err := m.h.d.Establish(&res.Handshake, c)
		require.NoError(t, err)
		c.flow = flow
		f.state, f.conn = stConn, c
		m.queue = append(m.queue, c)
	default:
		if m.cookies {
			require.Equal(t, socktable.ReasonBadCookie, res.Reason)
		} else {
			require.Equal(t, socktable.ReasonListenerRST, res.Reason)
		}
		require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: ackNo}, res.Reply)
	}
}

func (m *demuxModel) rst(t *rapid.T, i int) {
	f := &m.flows[i]
	res := m.deliver(i, tuple.RST, f.irs(i)+1, 0)
	switch f.state {
	case stConn:
		require.Equal(t, socktable.ToConn, res.Outcome)
	case stRequest:
		require.Equal(t, socktable.ReasonEmbryonicReset, res.Reason)
		require.Equal(t, socktable.Dropped, res.Outcome)
		f.state = stNone
		f.gen++
	case stTimeWait:
		require.Equal(t, socktable.ReasonTimeWait, res.Reason)
	default:
		require.Equal(t, socktable.ReasonListenerIgnored, res.Reason)
		if f.state == stCookie {
			f.state = stNone
			f.gen++
		}
	}
}

func (m *demuxModel) check(t *rapid.T) {
	require.Equal(t, m.requests(), m.l.SynQueueLen())
	require.Equal(t, len(m.queue), m.l.Queue().Depth())
	conns, tws := 0, 0
	for i := range m.flows {
		switch m.flows[i].state {
		case stConn:
			conns++
		case stTimeWait:
			tws++
		}
	}
	require.Equal(t, conns, countSeq2(m.h.d.Connections()))
	require.Equal(t, tws, countSeq(m.h.d.TimeWaits()))
	require.Equal(t, m.requests(), countSeq(m.h.d.Requests()))
	// One binding for the listener, one per connection and TIME_WAIT.
	require.Equal(t, 1+conns+tws, countSeq2(m.h.d.Bindings()))
}

func TestDemuxModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		abort := rapid.Bool().Draw(rt, "abort")
		backlog := rapid.IntRange(1, 3).Draw(rt, "backlog")
		h := newDemux(t, socktable.Options{AbortOnOverflow: abort})
		defer func() { _ = h.d.Close() }()
		l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: backlog, Shards: 1}, false)
		acc, err := l.Register(accept.Unbound)
		require.NoError(rt, err)
		m := &demuxModel{h: h, l: l, acc: acc, flows: make([]modelFlow, 6), backlog: backlog, abort: abort}
		flow := rapid.IntRange(0, len(m.flows)-1)
		rt.Repeat(map[string]func(*rapid.T){
			"syn":     func(t *rapid.T) { m.syn(t, flow.Draw(t, "flow")) },
			"ack":     func(t *rapid.T) { m.ack(t, flow.Draw(t, "flow"), true) },
			"bad-ack": func(t *rapid.T) { m.ack(t, flow.Draw(t, "flow"), false) },
			"rst":     func(t *rapid.T) { m.rst(t, flow.Draw(t, "flow")) },
			"accept": func(t *rapid.T) {
				got, err := m.acc.TryAccept()
				if len(m.queue) == 0 {
					require.ErrorIs(t, err, socktable.ErrEmpty)
					return
				}
				require.NoError(t, err)
				require.Same(t, m.queue[0], got.Conn)
				m.queue = m.queue[1:]
			},
			"timewait": func(t *rapid.T) {
				i := flow.Draw(t, "flow")
				f := &m.flows[i]
				if f.state != stConn {
					t.Skip("not connected")
				}
				f.rcvNxt = f.irs(i) + 2
				require.NoError(t, h.d.TimeWait(f.conn.flow, f.conn,
					timewait.State{RcvNxt: f.rcvNxt, SndNxt: sndNxtOf(f), RcvWnd: 65535}))
				f.state, f.conn = stTimeWait, nil
				f.gen++
			},
			"abort": func(t *rapid.T) {
				i := flow.Draw(t, "flow")
				f := &m.flows[i]
				if f.state != stConn {
					require.ErrorIs(t, h.d.Abort(socktable.Flow{}, &tconn{}), socktable.ErrInvalid)
					return
				}
				require.NoError(t, h.d.Abort(f.conn.flow, f.conn))
				f.state, f.conn = stNone, nil
				f.gen++
			},
			"": m.check,
		})
	})
}
