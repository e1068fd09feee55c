package socktable_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// A client side composed from the parts: one Hasher and one clock for every
// table, TIME_WAIT entries that own their port's binding, and connect()'s
// FlowChecker over the established and TIME_WAIT tables, so that a
// TIME_WAIT tuple is taken over in the call that picks the port.
func ExampleFlows() {
	hasher := tuple.NewHasher()
	clock := &timewait.ManualClock{}
	established, _ := table.NewEstablished[*conn](table.EstablishedOptions{Hasher: hasher})
	var ports *table.Ports
	timeWait, _ := timewait.NewTable(timewait.TableOptions[*table.Binding]{
		Hasher: hasher, Clock: clock, Reuse: timewait.ReuseOn,
		// An expired entry gives its port back.
		OnExpire: func(_ tuple.Tuple, b *table.Binding) { _ = ports.Release(b) },
	})
	flows, _ := socktable.NewFlows(established, timeWait)
	ports, _ = table.NewPorts(table.PortsOptions{Hasher: hasher, Flows: flows, EphemeralLow: 40000, EphemeralHigh: 40000})

	dst := tuple.MustEndpoint("192.0.2.1:443")
	req := table.ConnectRequest{Family: 4, Local: tuple.MustAddr("10.0.0.1"), Remote: dst}
	c, _ := ports.ConnectAny(req)
	_ = established.Insert(c.Tuple, &conn{1})
	fmt.Println("connected from port", c.Tuple.Local.Port)

	// The connection closes first: TIME_WAIT keeps the tuple, and owns the
	// binding (the entry goes in before the connection leaves the
	// established table, so a lookup sees one of the two).
	_ = ports.TimeWait(c.Binding)
	_ = timeWait.Enter(c.Tuple, timewait.State{SndNxt: 1000, HasTimestamps: true, TSRecentStamp: clock.Now()}, c.Binding)
	established.Delete(c.Tuple)
	_, err := ports.ConnectAny(req)
	fmt.Println("at once:", err)

	clock.Advance(2 * time.Second) // past tcp_tw_reuse's delay
	again, _ := ports.ConnectAny(req)
	fmt.Println("later: reused", again.Reused, "with ISN", again.Reuse.WriteSeq, "; old binding", c.Binding.State() == table.StateReleased)
	// Output:
	// connected from port 40000
	// at once: socktable: address not available
	// later: reused true with ISN 66537 ; old binding true
}

// A UDP stack's receive path: a DNS server's socket and a QUIC server's
// reuseport group, the datagrams they get, and the port unreachable for
// a port nobody has.
func ExampleUDPDemux() {
	type sock struct{ name string }
	d, err := socktable.NewUDPDemux[sock](socktable.UDPOptions{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	bind := func(addr string, port uint16, reusePort bool, name string) {
		a := tuple.MustAddr(addr)
		if _, err := d.Bind(table.BindRequest{Family: 4, Addr: a, Port: port, ReusePort: reusePort, Owner: 1000}, &sock{name}); err != nil {
			panic(err)
		}
	}
	bind("192.0.2.1", 53, false, "dns")
	bind("0.0.0.0", 443, true, "quic-a")
	bind("0.0.0.0", 443, true, "quic-b")

	for _, f := range []string{"192.0.2.1:53", "192.0.2.1:443", "192.0.2.1:5000"} {
		seg := tuple.Segment{Tuple: tuple.MustNew(f, "198.51.100.7:40000"), Proto: tuple.ProtoUDP, Version: 4}
		switch res := d.Deliver(&seg, 0, 0); res.Outcome {
		case socktable.ToConn:
			fmt.Println(f, "->", strings.TrimSuffix(strings.TrimSuffix(res.Conn.name, "-a"), "-b")) // either member of the group
		case socktable.Send:
			fmt.Printf("%s -> ICMP type %d code %d\n", f, res.Reply.Type, res.Reply.Code)
		}
	}
	// Output:
	// 192.0.2.1:53 -> dns
	// 192.0.2.1:443 -> quic
	// 192.0.2.1:5000 -> ICMP type 3 code 3
}
