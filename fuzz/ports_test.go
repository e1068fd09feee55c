package fuzz

import (
	"errors"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// bindAddrs is the fuzzer's address space: wildcards, specifics, a second
// specific of each family and the v4-mapped forms.
var bindAddrs = []struct {
	family int
	addr   string
}{
	{4, "0.0.0.0"}, {4, "127.0.0.1"}, {4, "127.0.0.2"},
	{6, "::"}, {6, "::1"}, {6, "2001:db8::2"}, {6, "127.0.0.1"}, {6, "0.0.0.0"},
}

// held is a binding the program holds, with the request that made it.
type held struct {
	b           *table.Binding
	req         table.BindRequest
	connectedTo tuple.Endpoint // ConnectAny's destination
}

// FuzzBind runs a program of bind-table operations decoded from the
// fuzzer's bytes (bind with any options on a few ports or port 0, listen,
// connect, connect from an unbound socket, TIME_WAIT, release) and checks
// after each step the rules no sequence may break: no panic, only the
// documented errors, a picked port in range and not shared, no four-tuple
// connected twice, and no two holders of one port on the same address of
// the same family unless both set SO_REUSEADDR or both set SO_REUSEPORT
// with one owner (no port hijacking); no two listening on it unless both
// set SO_REUSEPORT with one owner.
func FuzzBind(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 1, 0, 0, 2, 0})
	f.Add([]byte{0, 0x1c, 0, 0, 0x1c, 1, 2, 0, 2, 1, 4, 0, 0, 0x1c, 1})
	f.Add([]byte{0, 3, 2, 0, 0, 3, 2, 1, 1, 0, 3, 1, 5, 0})
	f.Fuzz(func(t *testing.T, program []byte) {
		ports, err := table.NewPorts(table.PortsOptions{EphemeralLow: 5000, EphemeralHigh: 5007})
		if err != nil {
			t.Fatal(err)
		}
		var live []held
		for len(program) >= 3 {
			op, a, c := program[0]%7, program[1], program[2]
			program = program[3:]
			switch op {
			case 0, 1: // bind: a = address and flags, c = port choice and owner
				spec := bindAddrs[int(a)%len(bindAddrs)]
				req := table.BindRequest{
					Family: spec.family, Addr: tuple.MustAddr(spec.addr),
					V6Only: spec.family == 6 && a&0x80 != 0, ReuseAddr: a&0x08 != 0, ReusePort: a&0x10 != 0,
					Owner: uint32(c>>4) % 2, Port: []uint16{0, 4000, 4001, 5003}[c%4],
				}
				b, err := ports.Bind(req)
				switch {
				case err == nil:
					if req.Port == 0 {
						checkPicked(t, b, req, live)
					}
					live = append(live, held{b: b, req: req})
				case !errors.Is(err, table.ErrAddrInUse) && !errors.Is(err, table.ErrInvalid) && !errors.Is(err, table.ErrNoPorts):
					t.Fatalf("bind %+v: unexpected error %v", req, err)
				}
			case 2: // listen
				if h := pick(live, a); h != nil {
					if err := ports.Listen(h.b); err != nil && !errors.Is(err, table.ErrAddrInUse) && !errors.Is(err, table.ErrInvalid) {
						t.Fatalf("listen: %v", err)
					}
				}
			case 3: // connect from the bound address, or loopback for a wildcard
				if h := pick(live, a); h != nil {
					local := h.b.Addr()
					if local.IsUnspecified() {
						local = tuple.MustAddr("127.0.0.1")
						if h.req.Family == 6 && !local.Is4() || h.req.V6Only {
							local = tuple.MustAddr("::1")
						}
					}
					_, err := ports.Connect(h.b, local, tuple.Endpoint{Addr: local, Port: 9})
					if err != nil && !errors.Is(err, table.ErrInvalid) && !errors.Is(err, table.ErrAddrNotAvail) {
						t.Fatalf("connect: %v", err)
					}
				}
			case 4: // TIME_WAIT
				if h := pick(live, a); h != nil {
					if err := ports.TimeWait(h.b); err != nil && !errors.Is(err, table.ErrInvalid) {
						t.Fatalf("time-wait: %v", err)
					}
				}
			case 6: // connect() on an unbound socket: a picked port, a unique four-tuple
				remote := tuple.Endpoint{Addr: tuple.MustAddr("192.0.2.1"), Port: uint16(80 + a%2)}
				req := table.ConnectRequest{Family: 4, Local: tuple.MustAddr("127.0.0.1"), Remote: remote}
				res, err := ports.ConnectAny(req)
				b := res.Binding
				if err != nil {
					if !errors.Is(err, table.ErrAddrNotAvail) {
						t.Fatalf("connect: %v", err)
					}
					continue
				}
				if p := b.Port(); p < 5000 || p > 5007 {
					t.Fatalf("connect picked port %d out of range", p)
				}
				for _, h := range live {
					if h.b.Port() == b.Port() && h.b.State() == table.StateConnected && h.connectedTo == remote {
						t.Fatalf("four-tuple to %v on port %d taken twice", remote, b.Port())
					}
				}
				live = append(live, held{b: b, req: table.BindRequest{Family: 4, Addr: req.Local}, connectedTo: remote})
			case 5: // release
				if len(live) > 0 {
					i := int(a) % len(live)
					if err := ports.Release(live[i].b); err != nil {
						t.Fatalf("release: %v", err)
					}
					live = append(live[:i], live[i+1:]...)
				}
			}
			checkSharing(t, live)
		}
		for _, h := range live {
			if err := ports.Release(h.b); err != nil {
				t.Fatal(err)
			}
		}
		for _, port := range []uint16{4000, 4001, 5003} {
			if _, err := ports.Bind(table.BindRequest{Family: 6, Addr: tuple.IPv6Unspecified(), Port: port}); err != nil {
				t.Fatalf("port %d still taken after every release: %v", port, err)
			}
		}
	})
}

func pick(live []held, a byte) *held {
	if len(live) == 0 {
		return nil
	}
	return &live[int(a)%len(live)]
}

// checkPicked: a port picked for port 0 is in range and shared with no
// holder whose address surely overlaps (same family and IP version, and
// equal addresses or either a wildcard), whatever the options: a holder
// of another address may have it (as in Linux; ::ffff:0.0.0.0 and ::1 do
// not overlap).
func checkPicked(t *testing.T, b *table.Binding, req table.BindRequest, live []held) {
	p := b.Port()
	if p < 5000 || p > 5007 {
		t.Fatalf("picked port %d out of range", p)
	}
	for _, h := range live {
		a, o := b.Addr(), h.b.Addr()
		if h.b.Port() == p && h.req.Family == req.Family && a.Is4() == o.Is4() &&
			(a == o || a.IsUnspecified() || o.IsUnspecified()) {
			t.Fatalf("picked port %d is already held by %+v", p, h.req)
		}
	}
}

func checkSharing(t *testing.T, live []held) {
	for i := range live {
		for j := i + 1; j < len(live); j++ {
			x, y := live[i], live[j]
			if x.b.Port() != y.b.Port() || x.req.Family != y.req.Family || x.b.Addr() != y.b.Addr() {
				continue
			}
			if x.connectedTo != (tuple.Endpoint{}) && y.connectedTo != (tuple.Endpoint{}) {
				continue // connect()-picked ports are shared by four-tuple (checked when made)
			}
			// A TIME_WAIT holder no longer enforces the owner rule (Linux).
			tw := x.b.State() == table.StateTimeWait || y.b.State() == table.StateTimeWait
			sameOwnerPort := x.req.ReusePort && y.req.ReusePort && (x.req.Owner == y.req.Owner || tw)
			if !sameOwnerPort && !(x.req.ReuseAddr && y.req.ReuseAddr) {
				t.Fatalf("%+v and %+v share a port", x.req, y.req)
			}
			if x.b.State() == table.StateListen && y.b.State() == table.StateListen && !sameOwnerPort {
				t.Fatalf("%+v and %+v both listen", x.req, y.req)
			}
		}
	}
}
