package socktable_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/tuple"
)

func clientN(i int) string { return fmt.Sprintf("10.0.%d.%d:%d", i>>8&255, i&255, 1024+i) }

// synTo sends a SYN from client i and returns the SYN-ACK's ISS.
func (h *demuxHarness) synTo(local string, i int, want socktable.Reason) socktable.Result[tconn] {
	h.t.Helper()
	s := seg(local, clientN(i), tuple.SYN, uint32(i*1000), 0)
	res := h.d.Deliver(&s, 0, 0)
	require.Equal(h.t, want, res.Reason, "SYN %d", i)
	return res
}

// complete sends client i's final ACK for iss.
func (h *demuxHarness) ack(local string, i int, iss uint32) socktable.Result[tconn] {
	s := seg(local, clientN(i), tuple.ACK, uint32(i*1000)+1, iss+1)
	return h.d.Deliver(&s, 0, 0)
}

// The SYN-ACK timer retransmits after 1, 2, 4, 8 and 16 seconds
// (tcp_synack_retries=5), then the request expires 32 seconds after the
// last, with no state left.
func TestDemuxSynAckRetransmitsThenExpires(t *testing.T) {
	h := newDemux(t, socktable.Options{})
	l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 8}, false)
	res := h.synTo(server, 1, socktable.ReasonSynQueued)
	iss := res.Reply.Seq
	var at []time.Duration
	for h.clock.Now() < 100*time.Second && l.SynQueueLen() > 0 {
		h.clock.Advance(10 * time.Millisecond)
		n := len(h.retransmits)
		h.d.Advance()
		if len(h.retransmits) > n {
			at = append(at, h.clock.Now())
			require.Equal(t, iss, h.retransmits[n].Seq)
			require.Equal(t, tuple.SYN|tuple.ACK, h.retransmits[n].Flags)
		}
	}
	at = append(at, h.clock.Now()) // the expiry
	// Each timeout doubles (TCP_TIMEOUT_INIT << num_timeout), firing at
	// or after its due time, late by at most the wheel level's
	// granularity (64 ms up to 4 s, 512 ms up to 32 s).
	require.Len(t, at, 6)
	prev := time.Duration(0)
	for k, a := range at {
		due := prev + time.Second<<k
		require.GreaterOrEqual(t, a, due, "firing %d", k)
		require.LessOrEqual(t, a, due+due/16+10*time.Millisecond, "firing %d", k)
		prev = a
	}
	require.Equal(t, 0, l.SynQueueLen())
	cs := h.d.Counters()
	require.Equal(t, uint64(5), cs.SynAckRetrans)
	require.Equal(t, uint64(1), cs.RequestTimeouts)
	// The late ACK finds nothing: the listener resets it.
	require.Equal(t, socktable.ReasonListenerRST, h.ack(server, 1, iss).Reason)
}

// A full SYN queue answers with SYN cookies (tcp_syncookies=1); a full
// accept queue drops SYNs; with cookies off a full SYN queue drops.
func TestDemuxSynQueueFull(t *testing.T) {
	for _, mode := range []socktable.SynCookies{socktable.SynCookiesOnOverflow, socktable.SynCookiesOff} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			h := newDemux(t, socktable.Options{SynCookies: mode, MaxSynBacklog: 1024})
			l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 4}, false)
			for i := range 4 {
				h.synTo(server, i, socktable.ReasonSynQueued)
			}
			require.Equal(t, 4, l.SynQueueLen())
			if mode == socktable.SynCookiesOff {
				h.synTo(server, 4, socktable.ReasonSynQueueFull)
				cs := h.d.Counters()
				require.Equal(t, uint64(1), cs.TCPReqQFullDrop)
				require.Equal(t, uint64(1), cs.ListenDrops)
				return
			}
			res := h.synTo(server, 4, socktable.ReasonSynCookie)
			require.Equal(t, socktable.Send, res.Outcome)
			require.Equal(t, 4, l.SynQueueLen(), "a cookie keeps no state")
			cs := h.d.Counters()
			require.Equal(t, uint64(1), cs.TCPReqQFullDoCookies)
			require.Equal(t, uint64(1), cs.SyncookiesSent)
		})
	}
}

// The final ACK to a full accept queue: tcp_abort_on_overflow=0 drops it
// and keeps the request (marked acked: its SYN-ACK retransmits, and the
// peer's next ACK completes it once there is room); =1 resets it. SYNs
// are dropped while the accept queue is full.
func TestDemuxAcceptOverflow(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprint("abort=", abort), func(t *testing.T) {
			h := newDemux(t, socktable.Options{AbortOnOverflow: abort})
			// Backlog 2: two requests, three connections queued.
			l := h.listen("192.0.2.1", 80, socktable.ListenOptions{Backlog: 2, Shards: 1}, false)
			acc, err := l.Register(accept.Unbound)
			require.NoError(t, err)
			iss1 := h.synTo(server, 1, socktable.ReasonSynQueued).Reply.Seq
			for i := 10; i < 13; i++ {
				iss := h.synTo(server, i, socktable.ReasonSynQueued).Reply.Seq
				res := h.ack(server, i, iss)
				require.Equal(t, socktable.Completed, res.Outcome)
				_, err = h.d.Establish(&res.Handshake, &tconn{id: i})
				require.NoError(t, err)
			}
			require.Equal(t, 3, l.Queue().Depth())

			h.synTo(server, 9, socktable.ReasonListenOverflow)
			res := h.ack(server, 1, iss1)
			require.Equal(t, socktable.ReasonListenOverflow, res.Reason)
			cs := h.d.Counters()
			require.Equal(t, uint64(2), cs.ListenOverflows)
			require.Equal(t, uint64(2), cs.ListenDrops)
			if abort {
				require.Equal(t, socktable.Reply{Flags: tuple.RST, Seq: iss1 + 1}, res.Reply)
				require.Equal(t, 0, l.SynQueueLen())
				return
			}
			require.Equal(t, socktable.Dropped, res.Outcome)
			require.Equal(t, 1, l.SynQueueLen())
			var acked bool
			for ri := range h.d.Requests() {
				acked = ri.Acked
			}
			require.True(t, acked)
			got, err := acc.TryAccept()
			require.NoError(t, err)
			require.Equal(t, 10, got.Conn.id)
			res = h.ack(server, 1, iss1)
			require.Equal(t, socktable.Completed, res.Outcome)
			_, err = h.d.Establish(&res.Handshake, &tconn{id: 1})
			require.NoError(t, err)
			for _, want := range []int{11, 12, 1} {
				got, err := acc.TryAccept()
				require.NoError(t, err)
				require.Equal(t, want, got.Conn.id)
			}
		})
	}
}
