package socktable_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// TestDeliverBatchIsDeliver: DeliverBatch gives, segment by segment, what
// Deliver gives, for bursts of every length around the short-burst cutoff
// and the lookup batch (0 to 40), of segments mixing established hits,
// TIME_WAIT entries, closed ports, other protocols and ICMP errors; and it
// handles min(len(segs), len(out)).
func TestDeliverBatchIsDeliver(t *testing.T) {
	h := newDemux(t, socktable.Options{Capacity: 1 << 10, InvalidRateLimit: -1})
	d := h.d
	h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 64}, false)
	var pool []tuple.Segment
	for i := range 24 {
		c := h.established(i + 1)
		pool = append(pool, seg(server, clientN(i+1), tuple.ACK, 0, 0))
		if i%4 == 0 {
			pool = append(pool, tuple.Segment{Tuple: c.flow.Tuple, Proto: tuple.ProtoTCP, Version: 4,
				ICMP: tuple.ICMPInfo{Kind: tuple.ICMPPacketTooBig}, MTU: 1400})
		}
	}
	for i := 100; i < 108; i++ {
		c := h.established(i)
		require.NoError(t, d.TimeWait(c.flow, c, timewait.State{RcvNxt: 5, SndNxt: 9, RcvWnd: 65535}))
		pool = append(pool, seg(server, clientN(i), tuple.FIN|tuple.ACK, 4, 9))
	}
	pool = append(pool, seg("192.0.2.1:81", clientN(200), tuple.ACK, 7, 3), seg("192.0.2.1:81", clientN(201), tuple.RST, 7, 0))
	udp := seg(server, clientN(1), 0, 0, 0)
	udp.Proto = tuple.ProtoUDP
	pool = append(pool, udp)

	r := rand.New(rand.NewPCG(1, 2))
	for n := range 41 {
		segs := make([]tuple.Segment, n)
		for i := range segs {
			segs[i] = pool[r.IntN(len(pool))]
		}
		out := make([]socktable.Result[tconn], n)
		require.Equal(t, n, d.DeliverBatch(segs, 0, 0, out))
		for i := range segs {
			want := d.Deliver(&segs[i], 0, 0)
			require.Equal(t, want, out[i], "burst of %d, segment %d (%v %v)", n, i, segs[i].Tuple, segs[i].Flags)
		}
		if n > 0 {
			short := make([]socktable.Result[tconn], n-1)
			require.Equal(t, n-1, d.DeliverBatch(segs, 0, 0, short), "out bounds the burst")
		}
	}
}
