package table_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The UDP bind corpus (testdata/kernel/udp-bind.jsonl, recorded by
// internal/kernelcorpus -udp; more in SOCKTABLE_UDP_BIND_CORPUS): every
// bind and connect answer of UDPPorts must be the kernel's.

// replayUDPBind runs one recorded UDP case against a fresh UDPPorts and
// returns the disagreements.
func replayUDPBind(t *testing.T, c *corpus.BindCase) []string {
	ports, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
	require.NoError(t, err)
	var diffs []string
	differ := func(i int, what, got, want string) {
		diffs = append(diffs, fmt.Sprintf("%s op %d %s: got %s, kernel %s", c.ID, i, what, got, want))
	}
	picked := map[int]int{}
	for i := range c.Ops {
		op := &c.Ops[i]
		b, err := ports.Bind(bindRequest(t, &op.BindSock), 0)
		if got, want := errnoName(err), op.ResultAt(corpus.StageBind); got != want {
			differ(i, "bind", got, want)
		}
		if err != nil {
			continue
		}
		if op.Port == 0 {
			p := int(b.Port())
			if len(c.PortRange) == 2 && (p < c.PortRange[0] || p > c.PortRange[1]) {
				differ(i, "picked port", fmt.Sprint(p), fmt.Sprint(c.PortRange))
			}
			if j, ok := picked[p]; ok {
				differ(i, "picked port", fmt.Sprintf("%d, op %d's too", p, j), "a port of its own")
			}
			picked[p] = i
		}
		if op.Action == corpus.ActionBindConnect {
			dst := corpusAddr(t, op.ConnectAddr)
			local := b.Addr()
			if local.IsUnspecified() {
				local = dst // loopback: the kernel routes from the destination address
			}
			err := b.Connect(local, tuple.Endpoint{Addr: dst, Port: uint16(op.ConnectPort)})
			if got, want := errnoName(err), op.ResultAt(corpus.StageConnect); got != want {
				differ(i, "connect", got, want)
			}
		}
		if op.Disconnect && op.Result == corpus.ResultOK {
			released, err := b.Disconnect()
			if err != nil {
				differ(i, "disconnect", errnoName(err), corpus.ResultOK)
				continue
			}
			if released != (op.AfterPort == 0) {
				differ(i, "disconnect's unhash", fmt.Sprint(released), fmt.Sprint(op.AfterPort == 0))
			} else if !released {
				got := tuple.Endpoint{Addr: b.Addr(), Port: b.Port()}
				if want := (tuple.Endpoint{Addr: corpusAddr(t, op.AfterAddr), Port: uint16(op.AfterPort)}); got != want {
					differ(i, "address after disconnect", got.String(), want.String())
				}
			}
		}
	}
	return diffs
}

func TestUDPPortsAgreeWithKernel(t *testing.T) {
	for _, path := range corpus.UDPBindFiles(kernelCorpusDir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases, err := corpus.ReadBindCases(path)
			require.NoError(t, err)
			require.NotEmpty(t, cases, path)
			var diffs []string
			for i := range cases {
				require.Equal(t, corpus.ProtoUDP, cases[i].Proto, cases[i].ID)
				diffs = append(diffs, replayUDPBind(t, &cases[i])...)
			}
			t.Logf("%s: %d cases, kernel %s", path, len(cases), cases[0].Kernel)
			requireKernelAgreement(t, diffs, 60)
		})
	}
}

// The UDP lookup corpus (testdata/kernel/udp-lookup.jsonl; more in
// SOCKTABLE_UDP_LOOKUP_CORPUS): every datagram must reach the socket the
// kernel gave it to — for a SO_REUSEPORT group, a member of the same
// group (which member depends on the kernel's secret) — or, where the
// kernel answered with a port unreachable, no socket.
func TestUDPLookupAgreesWithKernel(t *testing.T) {
	for _, path := range corpus.UDPLookupFiles(kernelCorpusDir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases, err := corpus.ReadLookupCases(path)
			require.NoError(t, err)
			require.NotEmpty(t, cases)
			var diffs []string
			datagrams := 0
			for i := range cases {
				c := &cases[i]
				require.Equal(t, corpus.ProtoUDP, c.Proto, c.ID)
				ports, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
				require.NoError(t, err)
				socks := make([]*table.UDPBinding[int], len(c.Listeners))
				for j, l := range c.Listeners {
					s := l.BindSock()
					socks[j], err = ports.Bind(bindRequest(t, &s), j)
					require.NoError(t, err, "%s socket %d", c.ID, j)
					if l.ConnectPort != 0 {
						peer := tuple.Endpoint{Addr: corpusAddr(t, l.ConnectAddr), Port: uint16(l.ConnectPort)}
						require.NotEmpty(t, l.ConnectedAddr, "%s socket %d: the address after connect", c.ID, j)
						require.NoError(t, socks[j].Connect(corpusAddr(t, l.ConnectedAddr), peer), "%s socket %d", c.ID, j)
						require.Equal(t, corpusAddr(t, l.ConnectedAddr), socks[j].Addr(), "%s socket %d: the address after connect", c.ID, j)
					}
					if l.Disconnect {
						released, err := socks[j].Disconnect()
						require.NoError(t, err, "%s socket %d", c.ID, j)
						require.False(t, released, "%s socket %d: a given port stays", c.ID, j)
						if got, want := socks[j].Addr(), corpusAddr(t, l.DisconnectedAddr); got != want {
							diffs = append(diffs, fmt.Sprintf("%s socket %d: address after disconnect %v, kernel %v", c.ID, j, got, want))
						}
					}
				}
				dst := tuple.Endpoint{Addr: corpusAddr(t, c.DstAddr), Port: uint16(c.DstPort)}
				flowsTo := map[int]map[tuple.Tuple]bool{} // the distinct flows the kernel gave each socket
				for k, cn := range c.Connects {
					datagrams++
					flow := tuple.Tuple{Local: dst, Remote: tuple.Endpoint{Addr: corpusAddr(t, cn.SrcAddr), Port: uint16(cn.SrcPort)}}
					if cn.Result.Err == "" {
						if flowsTo[cn.Result.Listener] == nil {
							flowsTo[cn.Result.Listener] = map[tuple.Tuple]bool{}
						}
						flowsTo[cn.Result.Listener][flow] = true
					}
					got, ok := ports.Lookup(flow, c.InDevice)
					if v, vok := ports.LookupValue(flow, c.InDevice); vok != ok || ok && v != got.Value() {
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: LookupValue %d %v, Lookup %v", c.ID, k, v, vok, ok))
					}
					switch {
					case cn.Result.Err != "":
						if ok {
							diffs = append(diffs, fmt.Sprintf("%s datagram %d: got socket %d, kernel %s", c.ID, k, slicesIndex(socks, got), cn.Result.Err))
						}
					case !ok:
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: got none, kernel socket %d", c.ID, k, cn.Result.Listener))
					case got.Value() != slicesIndex(socks, got):
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: socket %d carries value %d", c.ID, k, slicesIndex(socks, got), got.Value()))
					case got.Addr() != socks[cn.Result.Listener].Addr():
						// A group's members share one address: a member of
						// the kernel's group has the kernel socket's.
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: got socket %d at %v, kernel socket %d at %v", c.ID, k,
							slicesIndex(socks, got), got.Addr(), cn.Result.Listener, socks[cn.Result.Listener].Addr()))
					case !got.SameGroup(socks[cn.Result.Listener]):
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: got socket %d, kernel socket %d", c.ID, k, slicesIndex(socks, got), cn.Result.Listener))
					case got != socks[cn.Result.Listener] && got.Remote().Port != 0:
						diffs = append(diffs, fmt.Sprintf("%s datagram %d: got connected member %d, kernel %d", c.ID, k, slicesIndex(socks, got), cn.Result.Listener))
					}
				}
				diffs = append(diffs, lonelyGroups(c.ID, socks, flowsTo)...)
			}
			t.Logf("%s: %d cases, %d datagrams, kernel %s", path, len(cases), datagrams, cases[0].Kernel)
			requireKernelAgreement(t, diffs, 60)
		})
	}
}

// lonelyGroups is the other half of the group check: a group's member
// must not take every one of many flows when, by our table, unconnected
// members share its group. The kernel hashes each flow onto its group's
// members, so a group of two that takes 16 distinct flows all on one
// member happens once in 2^15 runs; a socket alone in its group (the
// kernel detached it) takes them all every time.
func lonelyGroups(id string, socks []*table.UDPBinding[int], flowsTo map[int]map[tuple.Tuple]bool) []string {
	var diffs []string
	for m, flows := range flowsTo {
		if len(flows) < 16 {
			continue
		}
		var mates []int
		for j, s := range socks {
			if j != m && s.Remote().Port == 0 && s.SameGroup(socks[m]) {
				if len(flowsTo[j]) > 0 {
					mates = nil
					break
				}
				mates = append(mates, j)
			}
		}
		if len(mates) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s: the kernel gave all %d flows to socket %d, which our table groups with unconnected %v", id, len(flows), m, mates))
		}
	}
	return diffs
}

func slicesIndex(s []*table.UDPBinding[int], b *table.UDPBinding[int]) int {
	for i, x := range s {
		if x == b {
			return i
		}
	}
	return -1
}
