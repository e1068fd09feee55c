package table

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/tuple"
)

// The porcupine model of the UDP table: per port, its sockets in the
// kernel's list order, with their chain ranks, groups and peers. The bind and scoring
// rules are the functions UDPPorts uses (proven against the kernel
// corpora); what this checks is the table around them — the per-port
// snapshots, the four-tuple table, the groups — under concurrent Bind,
// Connect, Disconnect, Release and LookupValue: every history must be explainable by
// the operations taking effect one at a time (a lookup never sees half a
// connect, or a released socket, or misses one that is there).

type udpOpKind uint8

const (
	udpOpBind udpOpKind = iota
	udpOpConnect
	udpOpRelease
	udpOpLookup
	udpOpDisconnect
)

// udpSlots bounds the sockets of a history: each client holds at most
// two (slot = client*2 + k).
const udpSlots = 8

type udpInput struct {
	op   udpOpKind
	port uint16
	slot int
	req  bindOwner      // bind
	id   int            // bind, disconnect: unique in the history, the group id of a new group
	peer tuple.Endpoint // connect: the peer; lookup: the source
	dst  tuple.Addr     // lookup: the destination address
}

type udpOutput struct {
	ok   bool
	slot int // lookup: the value (slot) found, -1 for none
}

type udpModelSock struct {
	slot   int
	owner  bindOwner
	remote tuple.Endpoint
	group  int // the id of the op that made the group; -1 outside one
	rank   int // the lookup chain's order, lower first
	// addrLocked: bound to a specific address, which a disconnect keeps.
	addrLocked bool
	// peerLeft: what a disconnected AF_INET6 socket keeps of its peer
	// (the zero Addr: nothing).
	peerLeft tuple.Addr
	// conns: its group's hasConns (every member holds the same).
	conns bool
	// connRank orders the connects, lower more recent: of the sockets
	// connected on one four-tuple the most recent takes its datagrams.
	connRank int
}

// udpState is one port's sockets in list order (immutable: Step copies).
type udpState []udpModelSock

func (s udpState) clone() udpState { return append(udpState(nil), s...) }

// headRank and tailRank are ranks before and after every socket's.
func (s udpState) headRank() int {
	r := 0
	for i := range s {
		r = min(r, s[i].rank)
	}
	return r - 1
}

func (s udpState) tailRank() int {
	r := 0
	for i := range s {
		r = max(r, s[i].rank)
	}
	return r + 1
}

// markConns sets hasConns on group g.
func (s udpState) markConns(g int) {
	for i := range s {
		if g >= 0 && s[i].group == g {
			s[i].conns = true
		}
	}
}

func (s udpState) find(slot int) int {
	for i := range s {
		if s[i].slot == slot {
			return i
		}
	}
	return -1
}

// inUse is udp_lib_lport_inuse over the model's list.
func (s udpState) inUse(sk *bindOwner) bool {
	for i := range s {
		sk2 := &s[i].owner
		if (sk2.reuseAddr && sk.reuseAddr) || !devicesOverlap(sk, sk2) || !rcvSaddrEqual(sk, sk2) {
			continue
		}
		return !(sk2.reusePort && sk.reusePort && sk2.uid == sk.uid)
	}
	return false
}

// lookup returns the slots a datagram of t may reach: one, or a group's
// unconnected members.
func (s udpState) lookup(t tuple.Tuple) []int {
	exact := -1 // the socket connected on exactly t most recently, first
	for i := range s {
		if r := s[i].remote; r.Port != 0 && r == t.Remote && s[i].owner.addr == t.Local.Addr && s[i].owner.device == 0 &&
			(exact < 0 || s[i].connRank < s[exact].connRank) {
			exact = i
		}
	}
	if exact >= 0 {
		return []int{s[exact].slot}
	}
	v4 := t.Local.Addr.Is4()
	chain := make([]int, len(s))
	for i := range chain {
		chain[i] = i
	}
	slices.SortFunc(chain, func(a, b int) int { return s[a].rank - s[b].rank })
	best, score := -1, 0
scan:
	for pass := 0; pass < 2 && best < 0; pass++ {
		for _, i := range chain {
			v := udpView[int]{addr: s[i].owner.addr, remote: s[i].remote, device: int32(s[i].owner.device),
				family: s[i].owner.family, v6only: s[i].owner.v6only}
			if s[i].peerLeft != (tuple.Addr{}) {
				v.remote = tuple.Endpoint{Addr: s[i].peerLeft}
			}
			if sc := udpScore(&v, &t, v4, pass == 1, 0); sc > score {
				best, score = i, sc
				if s[i].remote.Port == 0 && s[i].group >= 0 && !s[i].conns {
					break scan // the group answers at once
				}
			}
		}
	}
	if best < 0 {
		return nil
	}
	b := s[best]
	if b.remote.Port != 0 || b.group < 0 {
		return []int{b.slot}
	}
	var members []int
	for i := range s {
		if s[i].group == b.group && s[i].remote.Port == 0 {
			members = append(members, s[i].slot)
		}
	}
	return members
}

var udpModel = porcupine.Model{
	Init:  func() any { return udpState(nil) },
	Equal: func(a, b any) bool { return slices.Equal(a.(udpState), b.(udpState)) },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) uint16 { return in.(udpInput).port })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(udpState), input.(udpInput), output.(udpOutput)
		switch in.op {
		case udpOpBind:
			if s.inUse(&in.req) {
				return !out.ok, s
			}
			if !out.ok {
				return false, s
			}
			n := udpModelSock{slot: in.slot, owner: in.req, group: -1, addrLocked: in.req.addr != udpWildcard(int(in.req.family))}
			s = s.clone()
			if in.req.reusePort {
				n.group = in.id
				for i := range s {
					o := &s[i].owner
					if o.reusePort && o.family == in.req.family && o.v6only == in.req.v6only && o.device == in.req.device &&
						o.uid == in.req.uid && o.addr == in.req.addr {
						if s[i].group < 0 { // left its group at a connect: a new one
							s[i].group, s[i].conns = in.id, false
						}
						n.group, n.conns = s[i].group, s[i].conns
						break
					}
				}
			}
			if in.req.reusePort && in.req.family == 6 {
				n.rank = s.tailRank()
				return true, append(s, n)
			}
			n.rank = s.headRank()
			return true, append(udpState{n}, s...)
		case udpOpConnect:
			i := s.find(in.slot)
			if i < 0 {
				return false, s
			}
			s = s.clone()
			r := 0
			for j := range s {
				r = min(r, s[j].connRank)
			}
			x := &s[i]
			x.remote, x.peerLeft, x.connRank = in.peer, tuple.Addr{}, r-1
			if x.owner.family == 6 && in.peer.Addr.Is4() {
				s.markConns(x.group)
			}
			if x.owner.addr.IsUnspecified() {
				x.owner.addr = in.dst // the routed source: the chain's head, out of the group
				x.rank, x.group, x.conns = s.headRank(), -1, false
			}
			s.markConns(x.group)
			return out.ok, s
		case udpOpDisconnect:
			i := s.find(in.slot)
			if i < 0 {
				return false, s
			}
			s = s.clone()
			x := &s[i]
			if x.owner.family == 6 && x.remote.Port != 0 {
				x.peerLeft = x.remote.Addr
			}
			x.remote, x.owner.device = tuple.Endpoint{}, 0
			if !x.addrLocked {
				if w := udpWildcard(int(x.owner.family)); x.owner.addr != w {
					x.owner.addr, x.rank = w, s.headRank()
				}
				x.group = -1
			}
			return out.ok, s
		case udpOpRelease:
			i := s.find(in.slot)
			if i < 0 {
				return false, s
			}
			s = append(s.clone()[:i], s[i+1:]...)
			return out.ok, s
		case udpOpLookup:
			want := s.lookup(tuple.Tuple{Local: tuple.Endpoint{Addr: in.dst, Port: in.port}, Remote: in.peer})
			if len(want) == 0 {
				return !out.ok, s
			}
			for _, w := range want {
				if out.ok && out.slot == w {
					return true, s
				}
			}
			return false, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(udpInput), output.(udpOutput)
		return fmt.Sprintf("op%d port %d slot %d %v/%v A%v P%v u%d peer %v dst %v -> %v %d", in.op, in.port, in.slot,
			in.req.family, in.req.addr, in.req.reuseAddr, in.req.reusePort, in.req.uid, in.peer, in.dst, out.ok, out.slot)
	},
}

// udpSpecs are the binds clients make: sharing and conflicting mixes.
var udpSpecs = []BindRequest{
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReuseAddr: true},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), ReuseAddr: true},
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReusePort: true, Owner: 1},
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReusePort: true, Owner: 2},
	{Family: 6, Addr: tuple.IPv6Unspecified(), ReusePort: true, Owner: 1},
	{Family: 6, Addr: tuple.IPv6Unspecified(), ReuseAddr: true},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1")},
	{Family: 4, Addr: tuple.MustAddr("127.0.0.1"), ReusePort: true, Owner: 1}, // joins a wildcard member connected from 127.0.0.1
}

// udpDsts are the destinations of the histories' datagrams: the address
// connects route from, and another that only wildcards take.
var udpDsts = []tuple.Addr{tuple.MustAddr("127.0.0.1"), tuple.MustAddr("127.0.0.2")}

func TestUDPPortsLinearizable(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 10 {
			checkUDPLinearizable(t, uint64(round))
		}
	})
}

func checkUDPLinearizable(t *testing.T, seed uint64) {
	const clients, opsPerClient = 4, 100
	p, err := NewUDPPorts[int](UDPPortsOptions{})
	require.NoError(t, err)
	rec := porctest.NewRecorder(clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := map[int]*UDPBinding[int]{}
			r := porctest.NewRand(seed*7919 + uint64(c))
			for i := range opsPerClient {
				x := r.Next()
				slot := c*2 + int(x>>8%2)
				port := uint16(7100 + x>>12%2)
				b := held[slot]
				in := udpInput{slot: slot, port: port}
				var out udpOutput
				var call int64
				switch {
				case x>>20%3 == 0: // a datagram
					in.op = udpOpLookup
					in.dst = udpDsts[x>>30%2]
					in.peer = tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.9"), Port: uint16(4000 + x>>24%udpSlots)}
					call = rec.Call()
					v, ok := p.LookupValue(tuple.Tuple{Local: tuple.Endpoint{Addr: in.dst, Port: port}, Remote: in.peer}, 0)
					out = udpOutput{ok: ok, slot: v}
					if !ok {
						out.slot = -1
					}
				case b == nil:
					req := udpSpecs[x>>16%uint64(len(udpSpecs))]
					req.Port = port
					in.op, in.req, in.id = udpOpBind, ownerOf(req), c*opsPerClient+i
					call = rec.Call()
					nb, err := p.Bind(req, slot)
					out.ok = err == nil
					if out.ok {
						held[slot] = nb
					}
				case x>>28%2 == 0 && b.Remote().Port == 0:
					in.op, in.port = udpOpConnect, b.Port()
					in.dst = tuple.MustAddr("127.0.0.1")
					in.peer = tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.9"), Port: uint16(4000 + slot%2)} // two peers: sockets connected on one four-tuple
					if b.Family() == 6 && x>>30%2 == 0 {                                                     // over IPv6: its datagrams go elsewhere, what it keeps after a disconnect shows
						in.dst, in.peer.Addr = tuple.MustAddr("::1"), tuple.MustAddr("::9")
					}
					call = rec.Call()
					out.ok = b.Connect(in.dst, in.peer) == nil
				case x>>28%4 == 1:
					in.op, in.port, in.id = udpOpDisconnect, b.Port(), c*opsPerClient+i
					call = rec.Call()
					released, err := b.Disconnect()
					out.ok = err == nil && !released
				default:
					in.op, in.port = udpOpRelease, b.Port()
					call = rec.Call()
					out.ok = b.Release() == nil
					delete(held, slot)
				}
				rec.Return(c, call, in, out)
			}
		}()
	}
	wg.Wait()
	porctest.Check(t, udpModel, rec.History(), 10*time.Second)
}
