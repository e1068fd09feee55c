package socktable_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/tuple"
)

// A closing SO_REUSEPORT member's queued and half-open connections: with
// tcp_migrate_req=0 they come back as Orphans, out of every table; with
// it on they move to the members their flows now reach, and complete
// there. None is lost either way.
func TestDemuxListenerCloseMigratesOrOrphans(t *testing.T) {
	for _, migrate := range []bool{false, true} {
		t.Run(fmt.Sprint("migrate=", migrate), func(t *testing.T) {
			h := newDemux(t, socktable.Options{MigrateReq: migrate})
			d := h.d
			var ls []*socktable.Listener[tconn]
			for range 3 {
				ls = append(ls, h.listen("0.0.0.0", 443, socktable.ListenOptions{Backlog: 1000, Shards: 1}, true))
			}
			const local = "192.0.2.1:443"
			// 300 handshakes complete, 300 more stay half-open.
			owner := map[int]*socktable.Listener[tconn]{}
			iss := map[int]uint32{}
			for i := range 600 {
				res := h.synTo(local, i, socktable.ReasonSynQueued)
				owner[i], iss[i] = res.Listener, res.Reply.Seq
				if i < 300 {
					res = h.ack(local, i, iss[i])
					require.Equal(t, socktable.Completed, res.Outcome)
					_, err := d.Establish(&res.Handshake, &tconn{id: i})
					require.NoError(t, err)
				}
			}
			closing := ls[0]
			queued, half := closing.Queue().Depth(), closing.SynQueueLen()
			require.Positive(t, queued)
			require.Positive(t, half)
			o, err := closing.Close()
			require.NoError(t, err)
			_, err = closing.Close()
			require.ErrorIs(t, err, socktable.ErrClosed)
			if !migrate {
				require.Len(t, o.Conns, queued)
				require.Len(t, o.Requests, half)
				for _, a := range o.Conns {
					s := seg(local, clientN(a.Conn.id), tuple.ACK, 0, 0)
					require.NotEqual(t, socktable.ToConn, d.Deliver(&s, 0, 0).Outcome, "an orphan is in no table")
				}
			} else {
				require.Empty(t, o.Conns)
				require.Empty(t, o.Requests)
			}
			// The half-open ones complete (on a member, if migrated) or
			// are reset.
			completed := 0
			for i := 300; i < 600; i++ {
				if owner[i] != closing {
					continue
				}
				res := h.ack(local, i, iss[i])
				if !migrate {
					require.Equal(t, socktable.Send, res.Outcome)
					require.Equal(t, tuple.RST, res.Reply.Flags)
					continue
				}
				require.Equal(t, socktable.Completed, res.Outcome)
				require.NotSame(t, closing, res.Listener)
				_, err := d.Establish(&res.Handshake, &tconn{id: i})
				require.NoError(t, err)
				completed++
			}
			total := 0
			for _, l := range ls[1:] {
				acc, err := l.Register(accept.Unbound)
				require.NoError(t, err)
				for {
					if _, err := acc.TryAccept(); err != nil {
						break
					}
					total++
				}
			}
			if migrate {
				require.Equal(t, 300+completed, total, "every connection accepted somewhere, once")
			} else {
				require.Equal(t, 300-queued, total)
			}
		})
	}
}
