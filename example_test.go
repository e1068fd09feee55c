package socktable_test

import (
	"fmt"
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
