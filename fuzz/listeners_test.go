package fuzz

import (
	"errors"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// listenAddrs: wildcards, two specifics per family, a v4-mapped address.
var listenAddrs = []struct {
	family int
	v6only bool
	addr   string
}{
	{4, false, "0.0.0.0"}, {4, false, "192.0.2.1"}, {4, false, "192.0.2.2"},
	{6, false, "::"}, {6, true, "::"}, {6, false, "2001:db8::1"}, {6, false, "192.0.2.1"}, {6, false, "0.0.0.0"},
}

type liveListener struct {
	l      *table.Listener[int]
	family int
	v6only bool
	addr   tuple.Addr
	port   uint16
}

// FuzzListeners runs a program of Listen, Close and Lookup decoded from
// the fuzzer's bytes and checks every answer against the live listeners:
// a listener is found only on its port, never one for the
// wrong family (an IPv4 packet never reaches a v6only socket, an IPv6
// packet never an AF_INET one), and an exact-address listener that can
// take the packet always beats the wildcards.
func FuzzListeners(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 1, 0, 2, 0, 0})
	f.Add([]byte{0, 3, 1, 0, 5, 1, 2, 2, 1, 1, 0, 0, 2, 0, 1})
	f.Fuzz(func(t *testing.T, program []byte) {
		ports, err := table.NewPorts(table.PortsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{Slots: 2})
		if err != nil {
			t.Fatal(err)
		}
		var live []liveListener
		next := 0
		for len(program) >= 3 {
			op, a, c := program[0]%3, program[1], program[2]
			program = program[3:]
			switch op {
			case 0: // listen
				spec := listenAddrs[int(a)%len(listenAddrs)]
				req := table.BindRequest{Family: spec.family, V6Only: spec.v6only, Addr: tuple.MustAddr(spec.addr),
					Port: uint16(80 + c%2), ReusePort: a&0x10 != 0, Owner: uint32(c>>4) % 2}
				b, err := ports.Bind(req)
				if errors.Is(err, table.ErrAddrInUse) {
					continue
				}
				if err != nil {
					t.Fatalf("bind %+v: %v", req, err)
				}
				l, err := idx.Listen(b, next)
				if errors.Is(err, table.ErrAddrInUse) {
					_ = ports.Release(b)
					continue
				}
				if err != nil {
					t.Fatalf("listen %+v: %v", req, err)
				}
				live = append(live, liveListener{l, spec.family, spec.v6only, req.Addr, req.Port})
				next++
			case 1: // close
				if len(live) > 0 {
					i := int(a) % len(live)
					if err := live[i].l.Close(); err != nil {
						t.Fatalf("close: %v", err)
					}
					live = append(live[:i], live[i+1:]...)
				}
			case 2: // lookup
				dst := tuple.Endpoint{Addr: []tuple.Addr{tuple.MustAddr("192.0.2.1"), tuple.MustAddr("192.0.2.3"),
					tuple.MustAddr("2001:db8::1"), tuple.MustAddr("2001:db8::9")}[a%4], Port: uint16(80 + c%2)}
				h, ok := idx.Lookup(dst, tuple.Endpoint{Addr: tuple.MustAddr("198.51.100.1"), Port: uint16(1024 + int(c))}, 0)
				v := -1
				if ok {
					v = h.Value()
					if h.Binding().State() != table.StateListen {
						t.Fatalf("Lookup returned a listener whose binding is in state %d", h.Binding().State())
					}
				}
				checkLookup(t, live, dst, v, ok)
			}
		}
	})
}

func checkLookup(t *testing.T, live []liveListener, dst tuple.Endpoint, v int, ok bool) {
	exactExists := false
	for _, l := range live {
		if l.port == dst.Port && l.addr == dst.Addr && (dst.Addr.Is4() || l.family == 6) {
			exactExists = true
		}
	}
	if !ok {
		if exactExists {
			t.Fatalf("lookup %v: none, but an exact listener exists", dst)
		}
		return
	}
	for _, l := range live {
		if l.l.Value() != v {
			continue
		}
		switch {
		case l.port != dst.Port:
			t.Fatalf("lookup %v: listener on port %d", dst, l.port)
		case dst.Addr.Is4() && l.v6only, !dst.Addr.Is4() && (l.family == 4 || l.addr.Is4()):
			t.Fatalf("lookup %v: listener of the wrong family %+v", dst, l)
		case exactExists && l.addr != dst.Addr:
			t.Fatalf("lookup %v: wildcard %v chosen over an exact listener", dst, l.addr)
		}
		return
	}
	t.Fatalf("lookup %v: value %d is no live listener", dst, v)
}
