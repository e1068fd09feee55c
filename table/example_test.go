package table_test

import (
	"errors"
	"fmt"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// A stack's established table: insert a connection when its handshake
// completes, look it up for every segment, remove it when it closes.
func ExampleEstablished() {
	type conn struct{ name string }
	hasher := tuple.NewHasher() // one per stack, shared by all its tables
	est, err := table.New[*conn](table.Options{Capacity: 1 << 16, MaxEntries: 1 << 20, Hasher: hasher})
	if err != nil {
		panic(err)
	}
	flow := tuple.MustNew("192.0.2.1:443", "198.51.100.7:51000")
	c := &conn{name: "client 1"}
	if err := est.Insert(flow, c); err != nil {
		panic(err)
	}
	// A duplicate SYN that completed on another core loses the race.
	if err := est.Insert(flow, &conn{name: "duplicate"}); errors.Is(err, table.ErrExists) {
		fmt.Println("duplicate rejected")
	}

	// Per segment: lock-free, no allocation.
	if owner, ok := est.Lookup(flow); ok {
		fmt.Println("segment for", owner.name)
	}

	// Close: remove only if the tuple still maps to this connection.
	fmt.Println(est.CompareAndDelete(flow, c), est.Len())
	// Output:
	// duplicate rejected
	// segment for client 1
	// true 0
}

// Look up a burst of segments at once so their memory misses overlap.
func ExampleEstablished_LookupBatch() {
	est, _ := table.New[uint32](table.Options{})
	_ = est.Insert(tuple.MustNew("10.0.0.1:80", "10.0.0.2:1000"), 1)
	_ = est.Insert(tuple.MustNew("10.0.0.1:80", "10.0.0.2:1001"), 2)
	burst := []tuple.Tuple{
		tuple.MustNew("10.0.0.1:80", "10.0.0.2:1001"),
		tuple.MustNew("10.0.0.1:80", "10.0.0.2:9999"),
		tuple.MustNew("10.0.0.1:80", "10.0.0.2:1000"),
	}
	socks, found := make([]uint32, len(burst)), make([]bool, len(burst))
	est.LookupBatch(burst, socks, found)
	fmt.Println(socks, found)
	// Output: [2 0 1] [true false true]
}
