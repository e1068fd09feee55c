package table

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

// The rapid state machine of UDPPorts: random binds, connects,
// disconnects, releases and datagrams, one at a time, each answer checked against the
// sequential model of the porcupine check (udpModel.Step: the port's
// sockets in the kernel's list order, their groups and peers).
func TestUDPPortsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, err := NewUDPPorts[int](UDPPortsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		states := map[uint16]any{}
		held := map[int]*UDPBinding[int]{}
		step := func(in udpInput, out udpOutput) {
			s, ok := states[in.port]
			if !ok {
				s = udpModel.Init()
			}
			ok, next := udpModel.Step(s, in, out)
			if !ok {
				t.Fatalf("%s: not what the model allows", udpModel.DescribeOperation(in, out))
			}
			states[in.port] = next
		}
		for id := range rapid.IntRange(1, 60).Draw(t, "ops") {
			slot := rapid.IntRange(0, udpSlots-1).Draw(t, "slot")
			port := uint16(rapid.IntRange(7100, 7101).Draw(t, "port"))
			b := held[slot]
			switch op := rapid.IntRange(0, 4).Draw(t, "op"); {
			case op == 0 && b == nil:
				req := rapid.SampledFrom(udpSpecs).Draw(t, "spec")
				req.Port = port
				nb, err := p.Bind(req, slot)
				if err == nil {
					held[slot] = nb
				}
				step(udpInput{op: udpOpBind, port: port, slot: slot, req: ownerOf(req), id: id}, udpOutput{ok: err == nil})
			case op == 1 && b != nil && b.Remote().Port == 0 && b.Family() == 4:
				in := udpInput{op: udpOpConnect, port: b.Port(), slot: slot, dst: tuple.MustAddr("127.0.0.1"),
					peer: tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.9"), Port: uint16(4000 + slot%2)}} // two peers: sockets connected on one four-tuple
				step(in, udpOutput{ok: b.Connect(in.dst, in.peer) == nil})
			case op == 4 && b != nil:
				released, err := b.Disconnect()
				step(udpInput{op: udpOpDisconnect, port: b.Port(), slot: slot, id: id}, udpOutput{ok: err == nil && !released})
			case op == 2 && b != nil:
				delete(held, slot)
				step(udpInput{op: udpOpRelease, port: b.Port(), slot: slot}, udpOutput{ok: b.Release() == nil})
			default:
				in := udpInput{op: udpOpLookup, port: port, dst: rapid.SampledFrom(udpDsts).Draw(t, "dst"),
					peer: tuple.Endpoint{Addr: tuple.MustAddr("127.0.0.9"), Port: uint16(4000 + rapid.IntRange(0, udpSlots-1).Draw(t, "peer"))}}
				v, ok := p.LookupValue(tuple.Tuple{Local: tuple.Endpoint{Addr: in.dst, Port: port}, Remote: in.peer}, 0)
				out := udpOutput{ok: ok, slot: v}
				if !ok {
					out.slot = -1
				}
				step(in, out)
			}
		}
	})
}
