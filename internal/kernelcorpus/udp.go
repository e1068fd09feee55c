//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"fmt"
	"log"
	"math/rand/v2"
	"syscall"

	"github.com/socktable/socktable/internal/corpus"
)

// The UDP bind corpus (udp-bind.jsonl, -udp): the same socket grid as the
// TCP bind corpus — 13 address kinds × the four SO_REUSEADDR/SO_REUSEPORT
// combinations, owners 0 and 1000 — on SOCK_DGRAM sockets, whose rules
// are udp_lib_get_port's and udp_lib_lport_inuse's, not inet_csk's: no
// listen, no TIME_WAIT, and connect(2) only sets the peer (no helper
// needs to answer; the ops connect to the TCP helpers' addresses, which
// every family and v6only setting of the grid can reach).

// udpOp is k's op as a UDP socket: bind, or bind+connect.
func udpOp(k sockKind, uid int, connect, alt bool) corpus.BindOp {
	act := corpus.ActionBind
	if connect {
		act = corpus.ActionBindConnect
	}
	return k.op(uid, act, alt)
}

// udpPairCases is the pair grid: every grid point against every other,
// the first socket bound or bound and connected, the second bound (its
// answer is the bind answer). Where both set SO_REUSEPORT, every owner
// pair; elsewhere one line per point, cycling through owners and first
// actions, to check that they do not matter.
func udpPairCases() []corpus.BindCase {
	var cases []corpus.BindCase
	add := func(a, b sockKind, uidA, uidB int, connect bool) {
		cases = append(cases, corpus.BindCase{
			ID: fmt.Sprintf("udp-pair-%05d", len(cases)), Proto: corpus.ProtoUDP, Kind: corpus.KindPair,
			Ops: []corpus.BindOp{udpOp(a, uidA, connect, len(cases)%2 == 1), udpOp(b, uidB, false, false)},
		})
	}
	uidPairs := [][2]int{{0, 1000}, {1000, 0}, {1000, 1000}}
	cycle := 0
	ks := sockKinds()
	for _, a := range ks {
		for _, b := range ks {
			switch {
			case !a.valid() || !b.valid():
				add(a, b, 0, 0, false)
			case a.reusePort && b.reusePort:
				for _, connect := range []bool{false, true} {
					add(a, b, 0, 0, connect)
					for _, u := range uidPairs {
						add(a, b, u[0], u[1], connect)
					}
				}
			default:
				add(a, b, 0, 0, false)
				add(a, b, 0, 0, true)
				u := uidPairs[cycle%3]
				add(a, b, u[0], u[1], cycle/3%2 == 1)
				cycle++
			}
		}
	}
	return cases
}

// udpRandomSequences returns n random UDP cases of 3 or 4 sockets on one
// port, from a generator seeded with seed.
func udpRandomSequences(n int, seed uint64) []corpus.BindCase {
	return udpSequences(n, rand.New(rand.NewPCG(seed, 0x756470)), "udp-seq-rand", // "udp"
		func(r *rand.Rand, k sockKind, uid int) corpus.BindOp {
			return udpOp(k, uid, r.IntN(3) == 0, r.IntN(2) == 0)
		})
}

// udpDisconnectSequences returns n random UDP cases of 3 or 4 sockets on
// one port in which sockets also disconnect (connect(2) with AF_UNSPEC)
// after their bind or connect, from a generator of their own (the
// sequences above stay as they were recorded): what a disconnect gives
// back or keeps shows in the later binds' answers and in getsockname(2).
func udpDisconnectSequences(n int, seed uint64) []corpus.BindCase {
	return udpSequences(n, rand.New(rand.NewPCG(seed, 0x756470646973)), "udp-seq-disc", // "udpdis"
		func(r *rand.Rand, k sockKind, uid int) corpus.BindOp {
			op := udpOp(k, uid, r.IntN(2) == 0, r.IntN(2) == 0)
			op.Disconnect = r.IntN(3) != 0
			return op
		})
}

// udpSequences returns n cases named prefix-NNNN of 3 or 4 ops, each a
// random socket of the grid that op makes an op of, drawing from r.
func udpSequences(n int, r *rand.Rand, prefix string, op func(r *rand.Rand, k sockKind, uid int) corpus.BindOp) []corpus.BindCase {
	ks := sockKinds()
	cases := make([]corpus.BindCase, 0, n)
	for i := range n {
		ops := make([]corpus.BindOp, 3+r.IntN(2))
		for j := range ops {
			k, uid := randomSock(r, ks)
			ops[j] = op(r, k, uid)
		}
		cases = append(cases, corpus.BindCase{
			ID: fmt.Sprintf("%s-%04d", prefix, i), Proto: corpus.ProtoUDP, Kind: corpus.KindSequence, Ops: ops,
		})
	}
	return cases
}

// udpDeviceCases is the device grid: two sockets on one port, each on
// an IPv4 wildcard, loopback or dual-stack wildcard address, with no
// device, loopback's or a device no datagram crosses (SO_BINDTOIFINDEX),
// and none, SO_REUSEADDR or SO_REUSEPORT: devices keep two sockets apart
// only when both are bound to different ones. The first socket is by
// turns only bound, connected, or disconnected (which drops its device,
// so that the second meets it as a socket of no device); a socket on the
// other device does not connect (no route leaves through it).
func udpDeviceCases() []corpus.BindCase {
	addrs := []addrSpec{v4Any, v4Lo, dualAny}
	devices := []int{0, ifLo, ifOther}
	flags := []flagSet{{false, false}, {true, false}, {false, true}}
	type kind struct {
		k   sockKind
		dev int
	}
	var ks []kind
	for _, a := range addrs {
		for _, d := range devices {
			for _, f := range flags {
				ks = append(ks, kind{sockKind{a, f}, d})
			}
		}
	}
	var cases []corpus.BindCase
	for _, a := range ks {
		for _, b := range ks {
			n := len(cases)
			first := udpOp(a.k, 0, n%3 == 1 && a.dev != ifOther, false)
			first.Device, first.Disconnect = a.dev, n%3 == 2
			second := udpOp(b.k, 0, false, false)
			second.Device = b.dev
			if a.k.reusePort && b.k.reusePort && n%2 == 1 {
				second.UID = 1000 // another owner: no sharing
			}
			cases = append(cases, corpus.BindCase{
				ID: fmt.Sprintf("udp-dev-%04d", n), Proto: corpus.ProtoUDP, Kind: corpus.KindPair, Ops: []corpus.BindOp{first, second},
			})
		}
	}
	return cases
}

// disconnected returns op with a disconnect after it.
func disconnected(op corpus.BindOp) corpus.BindOp {
	op.Disconnect = true
	return op
}

// udpPort0Cases are binds to port 0: the kernel picks the port, so a
// replay can check the results, that each port lies in the range, and
// that no two sockets of a case share one (SO_REUSEADDR and SO_REUSEPORT
// do not make port 0 share).
func udpPort0Cases() []corpus.BindCase {
	k := func(a addrSpec, ra, rp bool) sockKind { return sockKind{a, flagSet{ra, rp}} }
	b := func(s sockKind) corpus.BindOp { return udpOp(s, 0, false, false) }
	seqs := [][]corpus.BindOp{
		{b(k(v4Any, false, false))},
		{b(k(v4Lo, true, false))},
		{udpOp(k(v4Lo, false, false), 0, true, false)},
		{b(k(dualAny, false, false))},
		{b(k(v6Lo, false, true))},
		{b(k(dualMapLo, false, false))},
		{b(k(v4Lo, true, false)), b(k(v4Lo, true, false))},
		{b(k(v4Any, false, true)), b(k(v4Any, false, true))},
		{b(k(dualAny, true, true)), b(k(v4Any, true, true)), b(k(v6Lo, true, true))},
		// A picked port is not locked: a disconnect unhashes the socket,
		// connected or not, and getsockname(2) gives port 0.
		{disconnected(udpOp(k(v4Any, false, false), 0, true, false))},
		{disconnected(udpOp(k(v4Lo, true, false), 0, true, false))},
		{disconnected(b(k(dualAny, false, true)))},
		{disconnected(udpOp(k(dualMapAny, false, false), 0, true, false))},
	}
	cases := make([]corpus.BindCase, len(seqs))
	for i, ops := range seqs {
		cases[i] = corpus.BindCase{ID: fmt.Sprintf("udp-port0-%02d", i), Proto: corpus.ProtoUDP, Kind: corpus.KindPort0, Ops: ops}
	}
	return cases
}

// runUDPOps runs a UDP case's ops in order on port (each op's Port set to
// it), fills in their results, and closes every socket at the end.
func runUDPOps(ops []corpus.BindOp, port int) {
	var fds []int
	defer func() { closeFDs(fds) }()
	for i := range ops {
		op := &ops[i]
		op.Port = port
		fd, err := openBoundType(op.BindSock, syscall.SOCK_DGRAM)
		if err != nil {
			setResult(op, err, corpus.StageBind)
			continue
		}
		fds = append(fds, fd)
		op.BoundPort = localPort(fd)
		if op.Action == corpus.ActionBindConnect {
			asUID(op.UID, func() { err = syscall.Connect(fd, sockaddr(op.Family, op.ConnectAddr, op.ConnectPort)) })
			setResult(op, err, corpus.StageConnect)
		} else {
			setResult(op, nil, "")
		}
		if op.Disconnect && op.Result == corpus.ResultOK {
			asUID(op.UID, func() { err = disconnect(fd) })
			if err != nil {
				log.Fatalf("disconnect: %v", err) // udp_disconnect returns 0
			}
			op.AfterAddr, op.AfterPort = localAddr(fd), localPort(fd)
		}
	}
}

// udpBindCases is the whole UDP bind corpus, ports not yet assigned.
func udpBindCases(random int, seed uint64) []corpus.BindCase {
	cases := udpPairCases()
	cases = append(cases, udpRandomSequences(random, seed)...)
	cases = append(cases, udpDisconnectSequences(random/2, seed)...)
	cases = append(cases, udpDeviceCases()...)
	return append(cases, udpPort0Cases()...)
}
