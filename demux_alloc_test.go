//go:build !race

package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// Deliver allocates nothing on any path, with the established table
// presized and the request slab warm (its first SYNs grow it by chunks).
func TestDemuxDeliverAllocatesNothing(t *testing.T) {
	h := newDemux(t, socktable.Options{Capacity: 1 << 12})
	d := h.d
	l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 64}, false)
	// An established connection and a TIME_WAIT entry.
	est := h.established(1)
	tw := h.established(2)
	require.NoError(t, d.TimeWait(tw.flow, tw, timewait.State{RcvNxt: 5, SndNxt: 5}))
	// Warm the slab: a request made and reset.
	h.synTo(server, 3, socktable.ReasonSynQueued)
	h.rst(server, 3)

	data := seg(server, clientN(1), tuple.ACK, 0, 0)
	twFin := seg(server, clientN(2), tuple.FIN|tuple.ACK, 4, 5)
	closedPort := seg("192.0.2.1:81", clientN(4), tuple.SYN, 7, 0)
	syn := seg(server, clientN(3), tuple.SYN, 3000, 0)
	rst := seg(server, clientN(3), tuple.RST, 3001, 0)
	icmp := tuple.Segment{Tuple: est.flow.Tuple, Proto: tuple.ProtoTCP, Version: 4,
		ICMP: tuple.ICMPInfo{Kind: tuple.ICMPPacketTooBig}, MTU: 1400}
	paths := []struct {
		name string
		run  func()
	}{
		{"established", func() { require.Equal(t, socktable.ToConn, d.Deliver(&data, 0, 0).Outcome) }},
		{"timewait", func() { require.Equal(t, socktable.ReasonTimeWait, d.Deliver(&twFin, 0, 0).Reason) }},
		{"nosocket", func() { require.Equal(t, socktable.ReasonNoSocket, d.Deliver(&closedPort, 0, 0).Reason) }},
		{"icmp", func() { require.Equal(t, socktable.ToConn, d.Deliver(&icmp, 0, 0).Outcome) }},
		{"syn+rst", func() {
			require.Equal(t, socktable.ReasonSynQueued, d.Deliver(&syn, 0, 0).Reason)
			require.Equal(t, socktable.ReasonRequest, d.Deliver(&syn, 0, 0).Reason)
			require.Equal(t, socktable.ReasonEmbryonicReset, d.Deliver(&rst, 0, 0).Reason)
		}},
	}
	for _, p := range paths {
		p.run()
		require.Zero(t, testing.AllocsPerRun(200, p.run), p.name)
	}
	segs := []tuple.Segment{data, data, twFin, closedPort, icmp, data}
	out := make([]socktable.Result[tconn], len(segs))
	require.Zero(t, testing.AllocsPerRun(200, func() { d.DeliverBatch(segs, 0, 0, out) }))
	require.Equal(t, socktable.ToConn, out[5].Outcome)
	_ = l
}

// The cookie paths allocate nothing either: the SYN answered with a
// cookie, the checked final ACK (a Handshake to Establish) and a forged
// one's RST.
func TestDemuxCookieAllocatesNothing(t *testing.T) {
	h := cookieDemux(t)
	d := h.d
	syn := seg(server, clientN(1), tuple.SYN, 1000, 0)
	syn.HasTimestamps, syn.TSval, syn.HasWScale, syn.WScale = true, 99, true, 7
	res := d.Deliver(&syn, 0, 0)
	require.Equal(t, socktable.ReasonSynCookie, res.Reason)
	ack := seg(server, clientN(1), tuple.ACK, 1001, res.Reply.Seq+1)
	ack.HasTimestamps, ack.TSval, ack.TSecr = true, 100, res.Reply.TSval
	forged := seg(server, clientN(1), tuple.ACK, 1001, res.Reply.Seq+9)
	for name, run := range map[string]func(){
		"cookie": func() { require.Equal(t, socktable.ReasonSynCookie, d.Deliver(&syn, 0, 0).Reason) },
		"ack":    func() { require.Equal(t, socktable.ReasonCookieACK, d.Deliver(&ack, 0, 0).Reason) },
		"forged": func() { require.Equal(t, socktable.ReasonBadCookie, d.Deliver(&forged, 0, 0).Reason) },
	} {
		run()
		require.Zero(t, testing.AllocsPerRun(200, run), name)
	}
}
