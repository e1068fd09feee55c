package socktable_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/tuple"
)

// cookieDemux is a Demux whose listener answers every SYN with a cookie
// (tcp_syncookies=2).
func cookieDemux(t *testing.T) *demuxHarness {
	h := newDemux(t, socktable.Options{SynCookies: socktable.SynCookiesAlways})
	h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 64, WScale: 7}, false)
	return h
}

// A valid cookie's final ACK creates the connection, with the MSS the
// cookie encoded (Linux's table: 1460 for a 1500-byte MTU's 1460, 1440
// for 1452) and, with timestamps, the window scale and SACK the TSval
// carried; no request entry is ever kept.
func TestDemuxCookieAccepted(t *testing.T) {
	h := cookieDemux(t)
	for _, c := range []struct {
		mss, want uint16
		ts        bool
	}{{1460, 1460, true}, {1452, 1440, true}, {1400, 1300, false}, {500, 536, false}} {
		i := int(c.mss)
		syn := seg(server, clientN(i), tuple.SYN, 7777, 0)
		syn.HasMSS, syn.MSS = true, c.mss
		syn.HasWScale, syn.WScale, syn.SACKPermitted = true, 9, true
		if c.ts {
			syn.HasTimestamps, syn.TSval = true, 424242
		}
		res := h.d.Deliver(&syn, 0, 0)
		require.Equal(t, socktable.ReasonSynCookie, res.Reason)
		require.Zero(t, countSeq(h.d.Requests()))
		rep := res.Reply
		require.Equal(t, c.ts, rep.HasWScale, "without timestamps a cookie cannot carry the window scale")
		require.Equal(t, c.ts, rep.SACKPermitted)

		ack := seg(server, clientN(i), tuple.ACK, 7778, rep.Seq+1)
		if c.ts {
			ack.HasTimestamps, ack.TSval, ack.TSecr = true, 424243, rep.TSval
		}
		h.clock.Advance(30 * time.Second)
		res = h.d.Deliver(&ack, 0, 0)
		require.Equal(t, socktable.Completed, res.Outcome, "mss %d", c.mss)
		require.Equal(t, socktable.ReasonCookieACK, res.Reason)
		hs := res.Handshake
		require.True(t, hs.Cookie)
		require.Equal(t, c.want, hs.MSS)
		require.Equal(t, rep.Seq, hs.ISS)
		require.Equal(t, uint32(7777), hs.IRS)
		require.Equal(t, c.ts, hs.HasWScale)
		if c.ts {
			require.Equal(t, uint8(9), hs.WScale)
			require.True(t, hs.SACKPermitted)
			require.Equal(t, uint32(424243), hs.TSRecent)
		}
		conn := &tconn{id: i}
		_, err := h.d.Establish(&hs, conn)
		require.NoError(t, err)
		require.Same(t, conn, h.d.Deliver(&ack, 0, 0).Conn)
	}
	cs := h.d.Counters()
	require.Equal(t, uint64(4), cs.SyncookiesSent)
	require.Equal(t, uint64(4), cs.SyncookiesRecv)
	require.Zero(t, cs.SyncookiesFailed)
}

// Forged cookies (data outside the MSS table, a wrong acknowledgment
// number, another flow's cookie, a changed sequence number) are rejected
// with an RST, and so are cookies older than Linux's window (made two
// minutes before, MAX_SYNCOOKIE_AGE) and a valid cookie replayed after it.
// (As in Linux, a cookie's low two bits are the MSS index, not covered by
// the MAC: ack+1 on index 0 is a valid cookie for MSS 1300.)
func TestDemuxCookieRejected(t *testing.T) {
	h := cookieDemux(t)
	syn := seg(server, clientN(1), tuple.SYN, 1000, 0)
	iss := h.d.Deliver(&syn, 0, 0).Reply.Seq
	other := seg(server, clientN(2), tuple.SYN, 1000, 0)
	otherISS := h.d.Deliver(&other, 0, 0).Reply.Seq
	for name, ack := range map[string]tuple.Segment{
		"data+4":       seg(server, clientN(1), tuple.ACK, 1001, iss+1+4),
		"ack-1":        seg(server, clientN(1), tuple.ACK, 1001, iss),
		"flipped bit":  seg(server, clientN(1), tuple.ACK, 1001, (iss+1)^1<<20),
		"other flow's": seg(server, clientN(1), tuple.ACK, 1001, otherISS+1),
		"seq moved":    seg(server, clientN(1), tuple.ACK, 1002, iss+1),
	} {
		res := h.d.Deliver(&ack, 0, 0)
		require.Equal(t, socktable.ReasonBadCookie, res.Reason, name)
		require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: ack.Ack}, res.Reply, name)
	}
	require.Equal(t, uint64(5), h.d.Counters().SyncookiesFailed)

	// The valid one, within its window (the minute it was made and the
	// next), then replayed after it (another cookie keeps the listener
	// checking ACKs).
	good := seg(server, clientN(1), tuple.ACK, 1001, iss+1)
	h.clock.Advance(time.Minute + 59*time.Second)
	h.d.Deliver(&syn, 0, 0)
	res := h.d.Deliver(&good, 0, 0)
	require.Equal(t, socktable.Completed, res.Outcome, "valid in its minute and the next")
	require.Equal(t, uint16(536), res.Handshake.MSS, "no MSS option: IPv4's 536")
	h.clock.Advance(time.Second)
	h.d.Deliver(&other, 0, 0)
	res = h.d.Deliver(&good, 0, 0)
	require.Equal(t, socktable.ReasonBadCookie, res.Reason, "two minutes after the minute it was made")

	// After two minutes without a cookie sent, ACKs are not even checked:
	// the listener resets them.
	h.clock.Advance(2*time.Minute + time.Second)
	require.Equal(t, socktable.ReasonListenerRST, h.d.Deliver(&good, 0, 0).Reason)
}
