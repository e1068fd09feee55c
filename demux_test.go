package socktable_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// tconn is the test stack's connection.
type tconn struct {
	id   int
	flow socktable.Flow
}

type demuxHarness struct {
	t     testing.TB
	d     *socktable.Demux[tconn]
	clock *timewait.ManualClock
	// retransmits records the SYN-ACKs the request timers sent.
	retransmits []socktable.Reply
}

func newDemux(t testing.TB, opts socktable.Options) *demuxHarness {
	t.Helper()
	h := &demuxHarness{t: t, clock: &timewait.ManualClock{}}
	opts.Clock = h.clock
	if opts.SendSynAck == nil {
		opts.SendSynAck = func(_ tuple.Tuple, r socktable.Reply) { h.retransmits = append(h.retransmits, r) }
	}
	d, err := socktable.NewDemux[tconn](opts)
	require.NoError(t, err)
	h.d = d
	t.Cleanup(func() { _ = d.Close() })
	return h
}

func (h *demuxHarness) listen(addr string, port uint16, o socktable.ListenOptions, reusePort bool) *socktable.Listener[tconn] {
	h.t.Helper()
	a := tuple.MustAddr(addr)
	fam := 4
	if !a.Is4() {
		fam = 6
	}
	b, err := h.d.Bind(table.BindRequest{Family: fam, Addr: a, Port: port, ReusePort: reusePort})
	require.NoError(h.t, err)
	l, err := h.d.Listen(b, o)
	require.NoError(h.t, err)
	return l
}

// seg builds a segment from remote to local.
func seg(local, remote string, flags tuple.Flags, seq, ack uint32) tuple.Segment {
	return tuple.Segment{Tuple: tuple.MustNew(local, remote), Proto: tuple.ProtoTCP, Version: 4,
		Flags: flags, Seq: seq, Ack: ack, Window: 65535}
}

const (
	server = "192.0.2.1:80"
	client = "10.0.0.1:40000"
)

func TestDemuxHandshakeToTimeWait(t *testing.T) {
	h := newDemux(t, socktable.Options{})
	d := h.d
	l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8, WScale: 7}, false)
	acc, err := l.Register(accept.Unbound)
	require.NoError(t, err)

	syn := seg(server, client, tuple.SYN, 1000, 0)
	syn.HasMSS, syn.MSS, syn.HasWScale, syn.WScale, syn.SACKPermitted = true, 1400, true, 15, true
	res := d.Deliver(&syn, 0, 0)
	require.Equal(t, socktable.Send, res.Outcome)
	require.Equal(t, socktable.ReasonSynQueued, res.Reason)
	require.Equal(t, tuple.SYN|tuple.ACK, res.Reply.Flags)
	require.Equal(t, uint32(1001), res.Reply.Ack)
	require.True(t, res.Reply.HasWScale)
	require.Equal(t, uint8(7), res.Reply.WScale)
	require.True(t, res.Reply.SACKPermitted)
	require.Equal(t, uint16(1460), res.Reply.MSS)
	require.Same(t, l, res.Listener)
	iss := res.Reply.Seq
	require.Equal(t, 1, l.SynQueueLen())

	// The peer did not get it: its retransmitted SYN gets the same SYN-ACK.
	again := d.Deliver(&syn, 0, 0)
	require.Equal(t, socktable.Send, again.Outcome)
	require.Equal(t, socktable.ReasonRequest, again.Reason)
	require.Equal(t, iss, again.Reply.Seq)

	// An ACK of something else is reset; the request stays.
	bad := seg(server, client, tuple.ACK, 1001, iss+7)
	res = d.Deliver(&bad, 0, 0)
	require.Equal(t, socktable.ReasonBadACK, res.Reason)
	require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: iss + 7}, res.Reply)
	require.Equal(t, 1, l.SynQueueLen())

	// The final ACK completes it.
	ack := seg(server, client, tuple.ACK, 1001, iss+1)
	res = d.Deliver(&ack, 0, 0)
	require.Equal(t, socktable.Completed, res.Outcome)
	hs := res.Handshake
	require.Equal(t, syn.Tuple, hs.Tuple)
	require.Equal(t, iss, hs.ISS)
	require.Equal(t, uint32(1000), hs.IRS)
	require.Equal(t, uint16(1400), hs.MSS)
	require.True(t, hs.HasWScale)
	require.Equal(t, uint8(tuple.MaxWindowScale), hs.WScale, "a shift above 14 is taken as 14")
	require.False(t, hs.Cookie)
	c := &tconn{id: 1}
	flow, err := d.Establish(&res.Handshake, c)
	require.NoError(t, err)
	c.flow = flow
	require.Equal(t, 0, l.SynQueueLen())
	_, err = d.Establish(&res.Handshake, &tconn{id: 2})
	require.ErrorIs(t, err, socktable.ErrExists, "a handshake completes once")

	got, err := acc.TryAccept()
	require.NoError(t, err)
	require.Same(t, c, got.Conn)
	require.Equal(t, flow, got.Flow)

	data := seg(server, client, tuple.ACK|tuple.PSH, 1001, iss+1)
	data.PayloadLen = 100
	res = d.Deliver(&data, 0, 0)
	require.Equal(t, socktable.ToConn, res.Outcome)
	require.Same(t, c, res.Conn)

	// Close into TIME_WAIT: the entry answers the peer's retransmitted FIN.
	require.NoError(t, d.TimeWait(c.flow, c, timewait.State{RcvNxt: 1102, SndNxt: iss + 2, RcvWnd: 65535}))
	fin := seg(server, client, tuple.FIN|tuple.ACK, 1101, iss+2)
	res = d.Deliver(&fin, 0, 0)
	require.Equal(t, socktable.Send, res.Outcome)
	require.Equal(t, socktable.ReasonTimeWait, res.Reason)
	require.Equal(t, tuple.ACK, res.Reply.Flags)
	require.Equal(t, uint32(1102), res.Reply.Ack)
	require.Equal(t, 1, countSeq(d.TimeWaits()))
	require.Equal(t, 0, countSeq2(d.Connections()))
	h.clock.Advance(20 * time.Second)
	for tw := range d.TimeWaits() {
		require.Equal(t, c.flow.Tuple, tw.Tuple)
		require.Equal(t, uint32(1102), tw.State.RcvNxt)
		require.Equal(t, timewait.TimeWaitLen-20*time.Second, tw.Remaining, "restarted by the FIN, 20 s ago")
	}

	// The entry expires and its port goes back.
	h.clock.Advance(timewait.TimeWaitLen + 5*time.Second)
	d.Advance()
	require.Equal(t, 0, countSeq(d.TimeWaits()))
	res = d.Deliver(&fin, 0, 0)
	require.Equal(t, socktable.ReasonListenerRST, res.Reason, "the listener answers an unknown ACK with an RST")
	require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: iss + 2}, res.Reply)

	// A SYN to a closed port.
	closed := seg("192.0.2.1:81", client, tuple.SYN, 5000, 0)
	res = d.Deliver(&closed, 0, 0)
	require.Equal(t, socktable.ReasonNoSocket, res.Reason)
	require.Equal(t, socktable.Reply{Flags: tuple.RST | tuple.ACK, Ack: 5001}, res.Reply)

	cs := d.Counters()
	require.Equal(t, uint64(1), cs.TW)
	require.Equal(t, uint64(2), cs.Delivered) // the final ACK and the data
	require.Equal(t, uint64(3), cs.Resets)
	require.Equal(t, uint64(3), cs.Answered) // two SYN-ACKs and the TIME_WAIT ACK
}

func countSeq[T any](s func(func(T) bool)) int {
	n := 0
	for range s {
		n++
	}
	return n
}

func countSeq2[K, V any](s func(func(K, V) bool)) int {
	n := 0
	for range s {
		n++
	}
	return n
}

// A SYN that TIME_WAIT accepts as new (a higher sequence number) is taken
// over by the listener in one step: the TIME_WAIT entry goes, a request
// with TIME_WAIT's ISN comes, and the old binding is released.
func TestDemuxTimeWaitSynTakenOver(t *testing.T) {
	h := newDemux(t, socktable.Options{})
	d := h.d
	h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8}, false)
	syn := seg(server, client, tuple.SYN, 1000, 0)
	iss := d.Deliver(&syn, 0, 0).Reply.Seq
	ack := seg(server, client, tuple.ACK, 1001, iss+1)
	res := d.Deliver(&ack, 0, 0)
	c := &tconn{id: 1}
	flow, err := d.Establish(&res.Handshake, c)
	require.NoError(t, err)
	require.NoError(t, d.TimeWait(flow, c, timewait.State{RcvNxt: 2000, SndNxt: 5000}))
	bindings := countSeq2(d.Bindings())

	again := seg(server, client, tuple.SYN, 3000, 0)
	res = d.Deliver(&again, 0, 0)
	require.Equal(t, socktable.ReasonSynQueued, res.Reason)
	require.Equal(t, uint32(5000+65537), res.Reply.Seq, "the ISN TIME_WAIT chose")
	require.Equal(t, 0, countSeq(d.TimeWaits()))
	require.Equal(t, bindings-1, countSeq2(d.Bindings()), "the TIME_WAIT binding is released")
	require.Equal(t, uint64(1), d.Counters().TWKilled)
	// An old SYN (below rcv_nxt) would not have been: TIME_WAIT ACKs it.
	res = d.Deliver(&again, 0, 0)
	require.Equal(t, socktable.ReasonRequest, res.Reason, "the retransmitted SYN finds the request")
}

// An ICMP error quoting a connection's segment goes to the connection; a
// fatal one quoting a request's SYN-ACK removes the request.
func TestDemuxICMP(t *testing.T) {
	h := newDemux(t, socktable.Options{})
	d := h.d
	l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8}, false)
	syn := seg(server, client, tuple.SYN, 1000, 0)
	iss := d.Deliver(&syn, 0, 0).Reply.Seq
	icmp := tuple.Segment{Tuple: syn.Tuple, Proto: tuple.ProtoTCP, Version: 4, Seq: iss,
		ICMP: tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Type: 3, Code: 3}}
	res := d.Deliver(&icmp, 0, 0)
	require.Equal(t, socktable.ReasonICMP, res.Reason)
	require.Equal(t, 1, l.SynQueueLen(), "port unreachable is not fatal to a request")
	icmp.ICMP.Code = 1 // host unreachable
	d.Deliver(&icmp, 0, 0)
	require.Equal(t, 0, l.SynQueueLen())

	iss = d.Deliver(&syn, 0, 0).Reply.Seq
	ack := seg(server, client, tuple.ACK, 1001, iss+1)
	res = d.Deliver(&ack, 0, 0)
	c := &tconn{id: 1}
	_, err := d.Establish(&res.Handshake, c)
	require.NoError(t, err)
	res = d.Deliver(&icmp, 0, 0)
	require.Equal(t, socktable.ToConn, res.Outcome)
	require.Same(t, c, res.Conn)
}

// Connect picks a port and inserts the connection; the SYN-ACK reaches it.
// Abort removes it at once and frees the port.
func TestDemuxConnectAndAbort(t *testing.T) {
	h := newDemux(t, socktable.Options{EphemeralLow: 40000, EphemeralHigh: 40000})
	d := h.d
	c := &tconn{id: 1}
	flow, err := d.Connect(table.ConnectRequest{Family: 4, Local: tuple.MustAddr("10.0.0.1"),
		Remote: tuple.MustEndpoint("192.0.2.1:443")}, c)
	require.NoError(t, err)
	require.Equal(t, uint16(40000), flow.Tuple.Local.Port)
	synack := tuple.Segment{Tuple: flow.Tuple, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN | tuple.ACK}
	res := d.Deliver(&synack, 0, 0)
	require.Equal(t, socktable.ToConn, res.Outcome)
	require.Same(t, c, res.Conn)
	_, err = d.Connect(table.ConnectRequest{Family: 4, Local: tuple.MustAddr("10.0.0.1"),
		Remote: tuple.MustEndpoint("192.0.2.1:443")}, &tconn{id: 2})
	require.ErrorIs(t, err, socktable.ErrAddrNotAvail)
	require.NoError(t, d.Abort(flow, c))
	require.ErrorIs(t, d.Abort(flow, c), socktable.ErrInvalid)
	res = d.Deliver(&synack, 0, 0)
	require.Equal(t, socktable.ReasonNoSocket, res.Reason)
	_, err = d.Connect(table.ConnectRequest{Family: 4, Local: tuple.MustAddr("10.0.0.1"),
		Remote: tuple.MustEndpoint("192.0.2.1:443")}, &tconn{id: 3})
	require.NoError(t, err, "the port is free again")
}

// established completes a handshake from client i to server.
func (h *demuxHarness) established(i int) *tconn {
	h.t.Helper()
	iss := h.synTo(server, i, socktable.ReasonSynQueued).Reply.Seq
	res := h.ack(server, i, iss)
	require.Equal(h.t, socktable.Completed, res.Outcome)
	c := &tconn{id: i}
	f, err := h.d.Establish(&res.Handshake, c)
	require.NoError(h.t, err)
	c.flow = f
	return c
}

// rst sends an in-window RST from client i (whose SYN had seq i*1000).
func (h *demuxHarness) rst(local string, i int) socktable.Result[tconn] {
	s := seg(local, clientN(i), tuple.RST, uint32(i*1000)+1, 0)
	return h.d.Deliver(&s, 0, 0)
}
