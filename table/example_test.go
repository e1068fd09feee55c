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
	est, err := table.NewEstablished[*conn](table.EstablishedOptions{Capacity: 1 << 16, MaxEntries: 1 << 20, Hasher: hasher})
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

// The SYN queue's request entries live in the established table beside
// the connections: the demultiplexer hashes a segment once, and a single
// lookup tells it, from the entry's kind, whether the segment belongs to
// a connection or completes a handshake, without touching the socket.
func ExampleEstablished_requestEntries() {
	type sock struct{ state string }
	est, _ := table.NewEstablished[*sock](table.EstablishedOptions{MaxEntries: 1 << 16})
	flow := tuple.MustNew("192.0.2.1:443", "198.51.100.7:51000")
	h := est.Hasher().Hash(flow) // once per segment, for every table

	// SYN: a request entry (Linux's TCP_NEW_SYN_RECV).
	req := &sock{state: "SYN_RECV"}
	if err := est.InsertHashedKind(h, flow, req, table.KindRequest); err != nil {
		panic(err) // ErrExists: a retransmitted SYN; ErrTableFull: a flood
	}

	// The final ACK: a request becomes a connection, in one step.
	if v, kind, ok := est.LookupHashedKind(h, flow); ok && kind == table.KindRequest {
		est.CompareAndSwapHashedKind(h, flow, v, &sock{state: "ESTABLISHED"}, table.KindConn)
	}
	v, kind, _ := est.LookupHashedKind(h, flow)
	fmt.Println(v.state, kind == table.KindConn)
	// Output: ESTABLISHED true
}

// Look up a burst of segments at once so their memory misses overlap.
func ExampleEstablished_LookupBatch() {
	est, _ := table.NewEstablished[uint32](table.EstablishedOptions{})
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

// Port sharing decided as Linux decides it: two SO_REUSEADDR sockets may
// both bind a port, but only one may listen on it; a SO_REUSEPORT group
// takes only sockets of one owner.
func ExamplePorts() {
	ports, err := table.NewPorts(table.PortsOptions{})
	if err != nil {
		panic(err)
	}
	local := tuple.MustAddr("127.0.0.1")
	a, _ := ports.Bind(table.BindRequest{Family: 4, Addr: local, Port: 8080, ReuseAddr: true})
	b, err := ports.Bind(table.BindRequest{Family: 4, Addr: local, Port: 8080, ReuseAddr: true})
	fmt.Println("second bind:", err)
	fmt.Println("first listen:", ports.Listen(a))
	fmt.Println("second listen:", ports.Listen(b))

	web := table.BindRequest{Family: 6, Addr: tuple.IPv6Unspecified(), Port: 443, ReusePort: true, Owner: 33}
	_, _ = ports.Bind(web)
	_, err = ports.Bind(web) // a second worker of the same owner
	fmt.Println("same owner:", err)
	web.Owner = 1000
	_, err = ports.Bind(web) // another user's process
	fmt.Println("other owner:", err)

	eph, _ := ports.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified()}) // port 0
	fmt.Println("picked an ephemeral port:", eph.Port() >= 32768 && eph.Port() <= 60999)
	// Output:
	// second bind: <nil>
	// first listen: <nil>
	// second listen: socktable: address already in use
	// same owner: <nil>
	// other owner: socktable: address already in use
	// picked an ephemeral port: true
}

// The listener a SYN reaches: an exact-address listener beats the
// wildcard; a SO_REUSEPORT group spreads flows over its members.
func ExampleListenerIndex() {
	ports, _ := table.NewPorts(table.PortsOptions{})
	listeners, _ := table.NewListenerIndex[string](ports, table.ListenerIndexOptions{})
	listenOn := func(addr string, name string) {
		b, err := ports.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr(addr), Port: 80, ReusePort: true})
		if err != nil {
			panic(err)
		}
		if _, err := listeners.Listen(b, name); err != nil {
			panic(err)
		}
	}
	listenOn("0.0.0.0", "worker")
	listenOn("0.0.0.0", "worker") // a second member of the same group
	listenOn("192.0.2.10", "admin")

	client := tuple.MustEndpoint("198.51.100.7:40000")
	who, _ := listeners.Lookup(tuple.MustEndpoint("192.0.2.10:80"), client, 0)
	fmt.Println("to 192.0.2.10:", who.Value())
	who, _ = listeners.Lookup(tuple.MustEndpoint("192.0.2.1:80"), client, 0)
	fmt.Println("to 192.0.2.1:", who.Value(), "one of", len(who.Members()))
	_, ok := listeners.Lookup(tuple.MustEndpoint("192.0.2.1:81"), client, 0)
	fmt.Println("port 81 listens:", ok)
	// Output:
	// to 192.0.2.10: admin
	// to 192.0.2.1: worker one of 2
	// port 81 listens: false
}
