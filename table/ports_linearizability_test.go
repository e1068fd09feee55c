package table

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/tuple"
)

// The porcupine model of the bind table: per port, the set of holders,
// decided by the flat-list rule (portConflict) over them. The rules are
// the same functions Ports uses (proven against the kernel corpus); what
// this checks is the table around them: that concurrent Bind, Listen,
// Inherit, TimeWait and Release on one port, with its holders counted in
// classes, behave as if run one at a time (two racing binds to a
// conflicting address never both succeed).

type portOpKind uint8

const (
	portBind portOpKind = iota
	portListen
	portRelease
	portInherit  // slot's listener accepts a child into child
	portTimeWait // slot's connection enters TIME_WAIT
)

// portSlots bounds the holders a history can have on one port: each of
// the clients holds at most two bindings and one accepted child
// (slot = client*3 + k, the child at k = 2).
const portSlots = 12

type portInput struct {
	op    portOpKind
	port  uint16
	slot  int
	child int       // for portInherit
	req   bindOwner // for portBind
}

type portOutput struct{ ok bool }

type portHolder struct {
	held  bool
	owner bindOwner
}

type portState [portSlots]portHolder

func (s *portState) holders(skip int) []*bindOwner {
	var hs []*bindOwner
	for i := range s {
		if s[i].held && i != skip {
			hs = append(hs, &s[i].owner)
		}
	}
	return hs
}

var portModel = porcupine.Model{
	Init: func() any { return portState{} },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) uint16 { return in.(portInput).port })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(portState), input.(portInput), output.(portOutput)
		switch in.op {
		case portBind:
			free := !portConflict(&in.req, s.holders(-1), true, true)
			if free {
				s[in.slot] = portHolder{held: true, owner: in.req}
			}
			return out.ok == free, s
		case portListen:
			h := s[in.slot]
			if !h.held {
				return false, s // the client listens only on what it holds
			}
			if h.owner.state == StateListen {
				return out.ok, s
			}
			h.owner.state = StateListen
			free := !portConflict(&h.owner, s.holders(in.slot), true, true)
			if free {
				s[in.slot] = h
			}
			return out.ok == free, s
		case portRelease:
			s[in.slot] = portHolder{}
			return out.ok, s
		case portInherit:
			h := s[in.slot]
			if !h.held || h.owner.state != StateListen {
				return !out.ok, s
			}
			c := h.owner
			c.addr, c.state = tuple.MustAddr("127.0.0.1"), StateConnected
			s[in.child] = portHolder{held: true, owner: c}
			return out.ok, s
		case portTimeWait:
			h := s[in.slot]
			if !h.held || h.owner.state != StateConnected {
				return !out.ok, s
			}
			h.owner.state = StateTimeWait
			s[in.slot] = h
			return out.ok, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(portInput)
		return fmt.Sprintf("op%d port %d slot %d %v/%v A%v P%v u%d -> %v", in.op, in.port, in.slot,
			in.req.family, in.req.addr, in.req.reuseAddr, in.req.reusePort, in.req.uid, output.(portOutput).ok)
	},
}

// portSpecs are the requests clients make: a mix that conflicts often
// and shares sometimes.
var portSpecs = []BindRequest{
	{Family: 4, Addr: tuple.IPv4Unspecified()},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), ReuseAddr: true},
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReuseAddr: true},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), ReusePort: true, Owner: 1},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), ReusePort: true, Owner: 2},
	{Family: 6, Addr: tuple.IPv6Unspecified(), ReusePort: true, Owner: 1},
	{Family: 6, V6Only: true, Addr: tuple.IPv6Unspecified()},
	{Family: 6, Addr: tuple.MustAddr("::1"), ReuseAddr: true},
}

func TestPortsLinearizable(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 10 {
			checkPortsLinearizable(t, uint64(round))
		}
	})
}

func checkPortsLinearizable(t *testing.T, seed uint64) {
	const clients, opsPerClient = 4, 120
	p, err := NewPorts(PortsOptions{})
	require.NoError(t, err)
	rec := porctest.NewRecorder(clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := map[int]*Binding{} // slot -> binding
			r := porctest.NewRand(seed*7919 + uint64(c))
			for range opsPerClient {
				x := r.Next()
				slot := c*3 + int(x>>8%2)
				child := c*3 + 2
				port := uint16(7000 + x>>12%2)
				in := portInput{slot: slot}
				var out portOutput
				b := held[slot]
				var call int64
				switch {
				case held[child] != nil && x>>28%3 == 0:
					// The child closes into TIME_WAIT, or goes.
					cb := held[child]
					in.slot, in.port = child, cb.Port()
					if x>>30%2 == 0 {
						in.op = portTimeWait
						call = rec.Call()
						out.ok = p.TimeWait(cb) == nil
					} else {
						in.op = portRelease
						call = rec.Call()
						out.ok = p.Release(cb) == nil
						delete(held, child)
					}
				case b == nil:
					req := portSpecs[x>>16%uint64(len(portSpecs))]
					req.Port = port
					in.op, in.port = portBind, port
					in.req = ownerOf(req)
					call = rec.Call()
					nb, err := p.Bind(req)
					out.ok = err == nil
					if out.ok {
						held[slot] = nb
					}
				case x>>20%4 == 0:
					in.op, in.port = portRelease, b.Port()
					call = rec.Call()
					out.ok = p.Release(b) == nil
					delete(held, slot)
				case x>>20%4 == 1 && held[child] == nil:
					in.op, in.port, in.child = portInherit, b.Port(), child
					call = rec.Call()
					cb, err := p.Inherit(b, tuple.MustAddr("127.0.0.1"))
					out.ok = err == nil
					if out.ok {
						held[child] = cb
					}
				default:
					in.op, in.port = portListen, b.Port()
					call = rec.Call()
					out.ok = p.Listen(b) == nil
				}
				rec.Return(c, call, in, out)
				if x&3 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	all := rec.History()
	won, lost, children := 0, 0, 0
	for _, op := range all {
		switch op.Input.(portInput).op {
		case portBind:
			if op.Output.(portOutput).ok {
				won++
			} else {
				lost++
			}
		case portInherit:
			if op.Output.(portOutput).ok {
				children++
			}
		}
	}
	require.True(t, won > 0 && lost > 0, "binds won %d, lost %d: the history must have both", won, lost)
	require.Positive(t, children, "the history must accept children")
	porctest.Check(t, portModel, all, 10*time.Second)
}

// The model rejects a history no correct table can produce: two binds of
// one address without options, both accepted.
func TestPortsModelCatchesDoubleBind(t *testing.T) {
	req := bindOwner{family: 4, addr: tuple.MustAddr("127.0.0.1"), port: 7000}
	bad := []porcupine.Operation{
		{ClientId: 0, Input: portInput{op: portBind, port: 7000, slot: 0, req: req}, Output: portOutput{ok: true}, Call: 1, Return: 4},
		{ClientId: 1, Input: portInput{op: portBind, port: 7000, slot: 2, req: req}, Output: portOutput{ok: true}, Call: 2, Return: 3},
	}
	require.False(t, porcupine.CheckOperations(portModel, bad))
}
