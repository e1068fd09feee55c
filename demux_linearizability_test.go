package socktable_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

type linOp uint8

const (
	linOpen     linOp = iota // Bind + ConnectBound of a new connection
	linDeliver               // an ACK: who owns the flow?
	linKillTW                // an in-window RST: kills a TIME_WAIT entry
	linTimeWait              // TimeWait of a connection
	linAbort                 // Abort of a connection
)

type linInput struct {
	op   linOp
	flow int
	conn int // the connection opened or closed
}

// linOutput: ok for open, timewait, abort; owner for a delivered segment
// (a connection id, linTW for a TIME_WAIT entry, 0 for nobody).
type linOutput struct {
	ok    bool
	owner int
}

const linTW = -1

type linState struct {
	owner int
	tw    bool
}

// demuxModel is the sequential specification of one flow: an owner
// (connection) or a TIME_WAIT entry or nothing.
var demuxLinModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) int { return in.(linInput).flow })
	},
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch in.op {
		case linOpen:
			if s.owner == 0 && !s.tw {
				return out.ok, linState{owner: in.conn}
			}
			return !out.ok, s
		case linDeliver, linKillTW:
			want := s.owner
			if s.tw {
				want = linTW
			}
			if out.owner != want {
				return false, s
			}
			if in.op == linKillTW && s.tw {
				s.tw = false
			}
			return true, s
		case linTimeWait, linAbort:
			if s.owner != 0 && s.owner == in.conn {
				return out.ok, linState{tw: in.op == linTimeWait}
			}
			return !out.ok, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		return fmt.Sprintf("op%d(flow %d, conn %d) -> %v %d", in.op, in.flow, in.conn, out.ok, out.owner)
	},
}

// Concurrent connects, segments, closes into TIME_WAIT, aborts and
// TIME_WAIT kills on a small flow set form linearizable histories: each
// flow has at every instant exactly one owner (a connection, a TIME_WAIT
// entry, or nobody), and Deliver always reports that one.
func TestDemuxLinearizable(t *testing.T) {
	porctest.AtProcs(t, nil, func(t *testing.T) {
		h := newDemux(t, socktable.Options{})
		d := h.d
		const flows, clients, opsPerClient = 3, 4, 150
		local := tuple.MustAddr("10.0.0.1")
		remote := tuple.MustEndpoint("192.0.2.1:80")
		flowTuple := func(f int) tuple.Tuple {
			return tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: uint16(5000 + f)}, Remote: remote}
		}
		// current holds each flow's last opened connection: a closer may
		// read a stale one, which the model expects to be refused.
		var mu sync.Mutex
		current := make([]*tconn, flows)
		rec := porctest.NewRecorder(clients)
		var wg sync.WaitGroup
		for cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := porctest.NewRand(uint64(cl + 1))
				for i := range opsPerClient {
					f := rnd.IntN(flows)
					tp := flowTuple(f)
					op := linOp(rnd.IntN(5))
					in := linInput{op: op, flow: f}
					var out linOutput
					switch op {
					case linOpen:
						c := &tconn{id: cl*100000 + i + 1}
						in.conn = c.id
						call := rec.Call()
						b, err := d.Bind(table.BindRequest{Family: 4, Addr: local, Port: tp.Local.Port, ReuseAddr: true})
						if err == nil {
							c.flow, err = d.ConnectBound(b, local, remote, c)
							if err != nil {
								_ = d.Ports().Release(b)
							}
						}
						out.ok = err == nil
						if out.ok {
							mu.Lock()
							current[f] = c
							mu.Unlock()
						}
						rec.Return(cl, call, in, out)
					case linDeliver, linKillTW:
						flags := tuple.ACK
						if op == linKillTW {
							flags = tuple.RST
						}
						s := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: flags, Seq: 1000, Ack: 2000}
						call := rec.Call()
						res := d.Deliver(&s, 0, 0)
						switch {
						case res.Outcome == socktable.ToConn:
							out.owner = res.Conn.id
						case res.Reason == socktable.ReasonTimeWait:
							out.owner = linTW
						}
						rec.Return(cl, call, in, out)
					case linTimeWait, linAbort:
						mu.Lock()
						c := current[f]
						mu.Unlock()
						if c == nil {
							continue
						}
						in.conn = c.id
						call := rec.Call()
						var err error
						if op == linTimeWait {
							err = d.TimeWait(c.flow, c, timewait.State{RcvNxt: 1000, SndNxt: 2000, RcvWnd: 1000})
						} else {
							err = d.Abort(c.flow, c)
						}
						out.ok = err == nil
						rec.Return(cl, call, in, out)
					}
				}
			}()
		}
		wg.Wait()
		porctest.Check(t, demuxLinModel, rec.History(), 10*time.Second)
		// Every port is held by a connection or a TIME_WAIT entry.
		require.Equal(t, countSeq2(d.Connections())+countSeq(d.TimeWaits()), countSeq2(d.Bindings()))
	})
}
