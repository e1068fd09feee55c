//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"syscall"

	"github.com/socktable/socktable/internal/corpus"
)

// The cases are corpus.BindCase values, their ops corpus.BindOp (socket
// ops made from corpus.BindSock, and late listens): internal/corpus
// declares the schema of bind.jsonl, which the replay test reads with it.
// The runner fills in each op's Result, Stage and BoundPort.

// setResult records err as the op's result, failing at stage.
func setResult(o *corpus.BindOp, err error, stage string) {
	if err == nil {
		o.Result, o.Stage = corpus.ResultOK, ""
		return
	}
	o.Result, o.Stage = errName(err), stage
}

// addrSpec is a family, IPV6_V6ONLY setting and bind address: the part of
// a socket the grids vary together, since which addresses make sense
// depends on the family.
type addrSpec struct {
	family int
	v6only *bool
	addr   string
}

// isMapped reports whether a is a v4-mapped IPv6 address.
func (a addrSpec) isMapped() bool {
	return a.family == 6 && netip.MustParseAddr(a.addr).Is4In6()
}

// valid reports whether a bind with a can succeed at all: a v6only socket
// binding a v4-mapped address always gets EINVAL.
func (a addrSpec) valid() bool { return !(a.isMapped() && *a.v6only) }

// The address kinds of the grids. "Other specific" is a second local
// address of the same family, to tell "same address" from "same family".
var (
	v4Any      = addrSpec{4, nil, "0.0.0.0"}
	v4Lo       = addrSpec{4, nil, "127.0.0.1"}
	v4Other    = addrSpec{4, nil, "127.0.0.2"}
	dualAny    = addrSpec{6, boolPtr(false), "::"}
	dualLo     = addrSpec{6, boolPtr(false), "::1"}
	dualOther  = addrSpec{6, boolPtr(false), "2001:db8::2"}
	dualMapLo  = addrSpec{6, boolPtr(false), "::ffff:127.0.0.1"}
	dualMapAny = addrSpec{6, boolPtr(false), "::ffff:0.0.0.0"}
	v6Any      = addrSpec{6, boolPtr(true), "::"}
	v6Lo       = addrSpec{6, boolPtr(true), "::1"}
	v6Other    = addrSpec{6, boolPtr(true), "2001:db8::2"}
	v6MapLo    = addrSpec{6, boolPtr(true), "::ffff:127.0.0.1"}
	v6MapAny   = addrSpec{6, boolPtr(true), "::ffff:0.0.0.0"}
)

// addrSpecs is the address grid: family 4 × {wildcard, specific, other
// specific}, and family 6 with v6only off and on × {wildcard, specific,
// other specific, v4-mapped specific, v4-mapped wildcard}.
var addrSpecs = []addrSpec{
	v4Any, v4Lo, v4Other,
	dualAny, dualLo, dualOther, dualMapLo, dualMapAny,
	v6Any, v6Lo, v6Other, v6MapLo, v6MapAny,
}

// flagSet is a socket's SO_REUSEADDR and SO_REUSEPORT settings.
type flagSet struct{ reuseAddr, reusePort bool }

// flagSets lists all four flag combinations.
var flagSets = []flagSet{{false, false}, {true, false}, {false, true}, {true, true}}

// sockKind is a grid point: address and flags, without owner or action.
type sockKind struct {
	addrSpec
	flagSet
}

// op returns the op for k with the given owner and action. For
// bind+connect, alt picks the IPv4 helper for a dual-stack wildcard, which
// can reach either helper.
func (k sockKind) op(uid int, action string, alt bool) corpus.BindOp {
	o := corpus.BindOp{
		BindSock: corpus.BindSock{
			Family: k.family, V6Only: k.v6only, Addr: k.addr,
			ReuseAddr: k.reuseAddr, ReusePort: k.reusePort, UID: uid,
		},
		Action: action,
	}
	if action == corpus.ActionBindConnect {
		o.ConnectAddr, o.ConnectPort = connectTarget(k.addrSpec, alt), helperPort
	}
	return o
}

// connectTarget picks the helper listener a socket bound to a connects to:
// one its family and v6only setting can reach. A v4-mapped or dual-stack
// socket reaching the IPv4 helper uses the v4-mapped form, as an AF_INET6
// program must.
func connectTarget(a addrSpec, alt bool) string {
	switch {
	case a.family == 4:
		return "127.0.0.1"
	case a.isMapped():
		return "::ffff:127.0.0.1"
	case !*a.v6only && a.addr == "::" && alt:
		return "::ffff:127.0.0.1"
	}
	return "::1"
}

// listenOp returns a late listen on op target.
func listenOp(target int) corpus.BindOp {
	return corpus.BindOp{Action: corpus.ActionListen, Target: target}
}

// sockKinds returns the 52 grid points, address-major.
func sockKinds() []sockKind {
	var ks []sockKind
	for _, a := range addrSpecs {
		for _, f := range flagSets {
			ks = append(ks, sockKind{a, f})
		}
	}
	return ks
}

// pairCases returns the pair grid described in the package comment. The
// second socket always does bind+listen: it is the last op, so its bind
// answer is the bind-only answer, and the listen answer comes for free.
func pairCases() []corpus.BindCase {
	var cases []corpus.BindCase
	add := func(a, b sockKind, uidA, uidB int, actA string) {
		alt := len(cases)%2 == 1
		cases = append(cases, corpus.BindCase{
			ID:   fmt.Sprintf("pair-%05d", len(cases)),
			Kind: corpus.KindPair,
			Ops:  []corpus.BindOp{a.op(uidA, actA, alt), b.op(uidB, corpus.ActionBindListen, false)},
		})
	}
	uidPairs := [][2]int{{0, 1000}, {1000, 0}, {1000, 1000}}
	firstActs := []string{corpus.ActionBind, corpus.ActionBindListen, corpus.ActionBindConnect}
	cycle := 0
	ks := sockKinds()
	for _, a := range ks {
		for _, b := range ks {
			switch {
			case !a.valid():
				add(a, b, 0, 0, corpus.ActionBind)
			case !b.valid():
				add(a, b, 0, 0, corpus.ActionBindListen)
			default:
				for _, act := range firstActs {
					add(a, b, 0, 0, act)
				}
				if a.reusePort && b.reusePort {
					// The owner rule lives here: every owner pair
					// against a bound and a listening first socket.
					for _, u := range uidPairs[:2] {
						add(a, b, u[0], u[1], corpus.ActionBind)
						add(a, b, u[0], u[1], corpus.ActionBindListen)
					}
					add(a, b, 1000, 1000, corpus.ActionBindListen)
					add(a, b, 0, 1000, corpus.ActionBindConnect)
				} else {
					// Owners should not matter here; one line per
					// grid point, cycling through owner pairs and
					// first actions, checks that they do not.
					u := uidPairs[cycle%3]
					add(a, b, u[0], u[1], firstActs[(cycle/3)%3])
					cycle++
				}
			}
		}
	}
	return cases
}

// fixedSequences returns the deterministic sequences: two sockets bind
// first, then both listen, in either order. This is the listen-time
// re-check (two SO_REUSEADDR binds succeed, the second listen fails),
// which a pair cannot show because its first socket listens before the
// second binds.
func fixedSequences() []corpus.BindCase {
	addrPairs := [][2]addrSpec{
		{v4Lo, v4Lo}, {v4Any, v4Lo}, {v4Lo, v4Any}, {dualAny, v4Any}, {dualLo, dualAny},
	}
	var cases []corpus.BindCase
	for _, ap := range addrPairs {
		for _, fa := range flagSets {
			for _, fb := range flagSets {
				for _, u := range [][2]int{{0, 0}, {0, 1000}} {
					for _, order := range [][2]int{{0, 1}, {1, 0}} {
						a, b := sockKind{ap[0], fa}, sockKind{ap[1], fb}
						cases = append(cases, corpus.BindCase{
							ID:   fmt.Sprintf("seq-fixed-%03d", len(cases)),
							Kind: corpus.KindSequence,
							Ops: []corpus.BindOp{
								a.op(u[0], corpus.ActionBind, false), b.op(u[1], corpus.ActionBind, false),
								listenOp(order[0]), listenOp(order[1]),
							},
						})
					}
				}
			}
		}
	}
	return cases
}

// randomSequences returns n random cases of 3 or 4 ops on one port, drawn
// from a generator seeded with seed, so a seed always gives the same
// cases. Sockets that can never bind (v6only with a v4-mapped address) are
// kept rare, since their answer is always the same.
func randomSequences(n int, seed uint64) []corpus.BindCase {
	r := rand.New(rand.NewPCG(seed, 0x6b65726e656c)) // "kernel"
	ks := sockKinds()
	cases := make([]corpus.BindCase, 0, n)
	for i := 0; i < n; i++ {
		nops := 3 + r.IntN(2)
		ops := make([]corpus.BindOp, 0, nops)
		listened := map[int]bool{} // a second late listen on one socket says nothing new
		for len(ops) < nops {
			if len(ops) > 0 && r.IntN(4) == 0 {
				var targets []int
				for j, o := range ops {
					if (o.Action == corpus.ActionBind || o.Action == corpus.ActionBindConnect) && !listened[j] {
						targets = append(targets, j)
					}
				}
				if len(targets) > 0 {
					t := targets[r.IntN(len(targets))]
					listened[t] = true
					ops = append(ops, listenOp(t))
					continue
				}
			}
			k, uid := randomSock(r, ks)
			act := corpus.ActionBind
			switch x := r.IntN(10); {
			case x >= 8:
				act = corpus.ActionBindConnect
			case x >= 4:
				act = corpus.ActionBindListen
			}
			ops = append(ops, k.op(uid, act, r.IntN(2) == 0))
		}
		cases = append(cases, corpus.BindCase{
			ID:   fmt.Sprintf("seq-rand-%04d", i),
			Kind: corpus.KindSequence,
			Ops:  ops,
		})
	}
	return cases
}

// randomSock draws a grid point and an owner for a random sequence: uid
// 1000 one time in three, and rarely a socket that can never bind (v6only
// with a v4-mapped address), since its answer is always the same.
func randomSock(r *rand.Rand, ks []sockKind) (sockKind, int) {
	k := ks[r.IntN(len(ks))]
	for !k.valid() && r.IntN(8) != 0 {
		k = ks[r.IntN(len(ks))]
	}
	uid := 0
	if r.IntN(3) == 0 {
		uid = 1000
	}
	return k, uid
}

// port0Cases returns the bind-to-port-0 cases. The kernel picks the port
// at random, so a replayer can check only the results, that each
// bound_port is inside port_range, and that no two sockets of a case got
// the same port.
func port0Cases() []corpus.BindCase {
	k := func(a addrSpec, ra, rp bool) sockKind { return sockKind{a, flagSet{ra, rp}} }
	seqs := [][]corpus.BindOp{
		{k(v4Any, false, false).op(0, corpus.ActionBind, false)},
		{k(v4Any, true, false).op(0, corpus.ActionBind, false)},
		{k(v4Any, false, true).op(0, corpus.ActionBind, false)},
		{k(v4Any, true, false).op(1000, corpus.ActionBind, false)},
		{k(v4Lo, false, false).op(0, corpus.ActionBindListen, false)},
		{k(v4Lo, false, false).op(0, corpus.ActionBindConnect, false)},
		{k(dualAny, false, false).op(0, corpus.ActionBind, false)},
		{k(v6Lo, false, false).op(0, corpus.ActionBindListen, false)},
		{k(dualMapLo, false, false).op(0, corpus.ActionBind, false)},
		{k(v6MapLo, false, false).op(0, corpus.ActionBind, false)},
		// Port 0 never shares a port, whatever the flags.
		{k(v4Lo, true, false).op(0, corpus.ActionBind, false), k(v4Lo, true, false).op(0, corpus.ActionBind, false)},
		{k(v4Any, false, true).op(0, corpus.ActionBind, false), k(v4Any, false, true).op(0, corpus.ActionBind, false)},
		{k(v4Any, true, true).op(0, corpus.ActionBindListen, false), k(v4Any, true, true).op(0, corpus.ActionBindListen, false)},
		{k(dualAny, true, false).op(0, corpus.ActionBind, false), k(v4Any, true, false).op(0, corpus.ActionBind, false)},
		{k(v4Any, true, true).op(0, corpus.ActionBind, false), k(v4Lo, true, true).op(0, corpus.ActionBind, false), k(v4Other, true, true).op(0, corpus.ActionBind, false)},
	}
	cases := make([]corpus.BindCase, len(seqs))
	for i, ops := range seqs {
		cases[i] = corpus.BindCase{ID: fmt.Sprintf("port0-%02d", i), Kind: corpus.KindPort0, Ops: ops}
	}
	return cases
}

// runOps runs ops in order on port (each op's Port is set to it), fills in
// their results, and closes every socket at the end. Sockets stay open
// across ops, because each later op must meet the earlier ones; a socket
// whose listen or connect failed stays open too, still bound, as it would
// in a program that ignored the error.
func (r *runner) runOps(ops []corpus.BindOp, port int) {
	fds := make([]int, len(ops))  // -1 where there is no socket
	rst := make([]bool, len(ops)) // connected: close with a RST
	var accepted []int            // the helper's ends of those connections
	defer func() {
		for _, fd := range accepted {
			closeRST(fd)
		}
		for i, fd := range fds {
			switch {
			case fd < 0:
			case rst[i]:
				closeRST(fd)
			default:
				closeFD(fd)
			}
		}
	}()
	for i := range ops {
		op := &ops[i]
		fds[i] = -1
		if op.Action == corpus.ActionListen {
			t := op.Target
			if fds[t] < 0 {
				op.Result = corpus.ResultSkippedNotBound
				continue
			}
			var err error
			asUID(ops[t].UID, func() { err = syscall.Listen(fds[t], backlog) })
			setResult(op, err, corpus.StageListen)
			continue
		}
		op.Port = port
		fd, err := openBound(op.BindSock, false)
		if err != nil {
			setResult(op, err, corpus.StageBind)
			continue
		}
		fds[i] = fd
		op.BoundPort = localPort(fd)
		switch op.Action {
		case corpus.ActionBindListen:
			asUID(op.UID, func() { err = syscall.Listen(fd, backlog) })
			setResult(op, err, corpus.StageListen)
		case corpus.ActionBindConnect:
			asUID(op.UID, func() { err = syscall.Connect(fd, sockaddr(op.Family, op.ConnectAddr, op.ConnectPort)) })
			setResult(op, err, corpus.StageConnect)
			if err == nil {
				// The accepted end leaves the helper's queue now, so
				// that the queue never fills.
				rst[i] = true
				accepted = append(accepted, r.acceptHelper(op.ConnectAddr))
			}
		default:
			setResult(op, nil, "")
		}
	}
}
