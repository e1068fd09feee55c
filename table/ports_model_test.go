package table

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

// portsModel runs random operations against Ports and a sequential model:
// one flat list of holders, every decision made by the rule functions over
// the holders of the port (the rules themselves are proven against the
// kernel corpus). It checks the table's own machinery: the classes of
// holders against the flat list (every bind and listen decision, and a
// probe of every request on every port), the port stripes, state changes,
// Inherit, the port-0 search and its errors, Release.
type portsModel struct {
	p     *Ports
	held  []*Binding
	model []*bindOwner // model[i] mirrors held[i]
}

const modelLow, modelHigh = 40000, 40003

func (s *portsModel) onPort(port uint16, skip *bindOwner) []*bindOwner {
	var hs []*bindOwner
	for _, o := range s.model {
		if o.port == port && o != skip {
			hs = append(hs, o)
		}
	}
	return hs
}

func (s *portsModel) pick(t *rapid.T) (int, bool) {
	if len(s.held) == 0 {
		return 0, false
	}
	return rapid.IntRange(0, len(s.held)-1).Draw(t, "held"), true
}

func (s *portsModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Bind": func(t *rapid.T) {
			spec := portSpecs[rapid.IntRange(0, len(portSpecs)-1).Draw(t, "spec")]
			spec.Port = []uint16{0, 7000, 7001, modelLow + 1}[rapid.IntRange(0, 3).Draw(t, "port")]
			o := ownerOf(spec)
			b, err := s.p.Bind(spec)
			if spec.Port == 0 {
				if errors.Is(err, ErrNoPorts) {
					for port := uint16(modelLow); port <= modelHigh; port++ {
						o.port = port
						if !portConflict(&o, s.onPort(port, nil), false, false) {
							t.Fatalf("ErrNoPorts, but port %d is free for %+v", port, o)
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("Bind port 0: %v", err)
				}
				o.port = b.Port()
				if o.port < modelLow || o.port > modelHigh || portConflict(&o, s.onPort(o.port, nil), false, false) {
					t.Fatalf("picked port %d for %+v", o.port, o)
				}
			} else {
				want := portConflict(&o, s.onPort(o.port, nil), true, true)
				if got := errors.Is(err, ErrAddrInUse); got != want || (err != nil && !got) {
					t.Fatalf("Bind %+v: %v, model conflict %v", o, err, want)
				}
				if err != nil {
					return
				}
			}
			s.held, s.model = append(s.held, b), append(s.model, &o)
		},
		"ConnectAny": func(t *rapid.T) {
			remote := tuple.Endpoint{Addr: tuple.MustAddr("192.0.2.1"), Port: uint16(rapid.IntRange(80, 81).Draw(t, "dport"))}
			local := tuple.MustAddr("127.0.0.1")
			free := func(port uint16) bool { // connect()'s test, on the model
				for _, o := range s.onPort(port, nil) {
					if !o.autobound || (o.addr == local && o.remote == remote) {
						return false
					}
				}
				return true
			}
			res, err := s.p.ConnectAny(ConnectRequest{Family: 4, Local: local, Remote: remote})
			b := res.Binding
			if errors.Is(err, ErrAddrNotAvail) {
				for port := uint16(modelLow); port <= modelHigh; port++ {
					if free(port) {
						t.Fatalf("ErrAddrNotAvail, but port %d is free for %v", port, remote)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ConnectAny: %v", err)
			}
			port := b.Port()
			if port < modelLow || port > modelHigh || !free(port) {
				t.Fatalf("ConnectAny picked port %d", port)
			}
			if want := (tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: port}, Remote: remote}); res.Tuple != want || res.Reused {
				t.Fatalf("ConnectAny result %+v, want tuple %v", res, want)
			}
			o := &bindOwner{family: 4, addr: local, port: port, state: StateConnected, remote: remote, autobound: true}
			s.held, s.model = append(s.held, b), append(s.model, o)
		},
		"Listen": func(t *rapid.T) {
			i, ok := s.pick(t)
			if !ok {
				return
			}
			o := s.model[i]
			err := s.p.Listen(s.held[i])
			switch o.state {
			case StateConnected, StateTimeWait:
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Listen in state %d: %v", o.state, err)
				}
				return
			case StateListen:
				if err != nil {
					t.Fatalf("Listen again: %v", err)
				}
				return
			}
			o.state = StateListen
			want := portConflict(o, s.onPort(o.port, o), true, true)
			if errors.Is(err, ErrAddrInUse) != want || (err != nil && !want) {
				t.Fatalf("Listen %+v: %v, model conflict %v", *o, err, want)
			}
			if want {
				o.state = StateBound
			}
		},
		"Connect": func(t *rapid.T) {
			i, ok := s.pick(t)
			if !ok {
				return
			}
			o := s.model[i]
			local := o.addr
			if local.IsUnspecified() {
				local = tuple.MustAddr("127.0.0.1")
				if o.v6Kind() == v6Any && o.v6only {
					local = tuple.MustAddr("::1")
				}
			}
			remote := tuple.MustEndpoint("127.0.0.1:9")
			_, err := s.p.Connect(s.held[i], local, remote)
			wantInvalid := o.state != StateBound
			// With no FlowChecker the table knows only its own
			// connections: one holding the tuple (TIME_WAIT included)
			// keeps it.
			wantTaken := false
			for _, o2 := range s.onPort(o.port, o) {
				wantTaken = wantTaken || (o2.addr == local && o2.remote == remote)
			}
			switch {
			case wantInvalid:
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Connect in state %d: %v", o.state, err)
				}
			case wantTaken:
				if !errors.Is(err, ErrAddrNotAvail) {
					t.Fatalf("Connect to a taken tuple: %v", err)
				}
			case err != nil:
				t.Fatalf("Connect: %v", err)
			default:
				o.addr, o.state, o.remote = local, StateConnected, remote
			}
			if got := s.held[i].Addr(); got != o.addr {
				t.Fatalf("Addr %v, model %v", got, o.addr)
			}
		},
		"Inherit": func(t *rapid.T) {
			i, ok := s.pick(t)
			if !ok {
				return
			}
			o := s.model[i]
			local := tuple.MustAddr([]string{"127.0.0.1", "127.0.0.2", "::1"}[rapid.IntRange(0, 2).Draw(t, "local")])
			c, err := s.p.Inherit(s.held[i], local)
			if o.state != StateListen {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Inherit from state %d: %v", o.state, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inherit: %v", err)
			}
			child := *o
			child.addr, child.state = local, StateConnected
			s.held, s.model = append(s.held, c), append(s.model, &child)
		},
		"Probe": func(t *rapid.T) { // classes decide as the flat list of holders does
			spec := portSpecs[rapid.IntRange(0, len(portSpecs)-1).Draw(t, "spec")]
			spec.Port = []uint16{7000, 7001, modelLow, modelLow + 1}[rapid.IntRange(0, 3).Draw(t, "port")]
			o := ownerOf(spec)
			relax := rapid.Bool().Draw(t, "relax")
			st := s.p.stripe(o.port)
			st.mu.Lock()
			got := classConflictLocked(&o, nil, st.ports[o.port], relax, relax)
			st.mu.Unlock()
			if want := portConflict(&o, s.onPort(o.port, nil), relax, relax); got != want {
				t.Fatalf("classes say conflict=%v for %+v, the holders %v", got, o, want)
			}
		},
		"TimeWait": func(t *rapid.T) {
			i, ok := s.pick(t)
			if !ok {
				return
			}
			o := s.model[i]
			err := s.p.TimeWait(s.held[i])
			if want := o.state == StateConnected; want != (err == nil) {
				t.Fatalf("TimeWait in state %d: %v", o.state, err)
			}
			if err == nil {
				o.state = StateTimeWait
			}
		},
		"Release": func(t *rapid.T) {
			i, ok := s.pick(t)
			if !ok {
				return
			}
			if err := s.p.Release(s.held[i]); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if err := s.p.Release(s.held[i]); !errors.Is(err, ErrInvalid) {
				t.Fatalf("second Release: %v", err)
			}
			s.held = append(s.held[:i], s.held[i+1:]...)
			s.model = append(s.model[:i], s.model[i+1:]...)
		},
		"": func(t *rapid.T) { // invariant: every binding reports the model's state; the classes count every holder once
			for i, b := range s.held {
				if b.State() != s.model[i].state || b.Port() != s.model[i].port || b.Remote() != s.model[i].remote {
					t.Fatalf("binding %d: state %d port %d, model %+v", i, b.State(), b.Port(), *s.model[i])
				}
			}
			n := 0
			for range s.p.All() {
				n++
			}
			if n != len(s.held) {
				t.Fatalf("All yields %d bindings, model holds %d", n, len(s.held))
			}
		},
	}
}

func TestPortsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, err := NewPorts(PortsOptions{EphemeralLow: modelLow, EphemeralHigh: modelHigh})
		if err != nil {
			t.Fatal(err)
		}
		s := &portsModel{p: p}
		t.Repeat(s.actions())
	})
}
