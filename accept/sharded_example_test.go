package accept_test

import (
	"context"
	"fmt"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/tuple"
)

// A listener split over two shards: a connection whose handshake ran on a
// shard with an acceptor waits in that shard's local queue; one from a
// shard without goes to the global queue; the backlog of 2 holds three.
func ExampleSharded() {
	l, err := accept.NewSharded[string](accept.ShardedOptions{Shards: 2, Backlog: 2})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	a, _ := l.Register(0) // an accept() loop pinned to shard 0

	flow := tuple.MustNew("192.0.2.1:443", "198.51.100.7:40000")
	shard := l.SteerRSS(accept.RSSHash(accept.DefaultRSSKey[:], flow))
	fmt.Println("RSS puts the flow on shard", shard)

	_ = l.TryEnqueue(0, "conn-a")
	_ = l.TryEnqueue(1, "conn-b")
	_ = l.TryEnqueue(0, "conn-c")
	fmt.Println("fourth:", l.TryEnqueue(1, "conn-d"))
	fmt.Println("shard 0's queue:", l.ShardDepth(0), "listener's:", l.Depth())

	for range 3 {
		c, _ := a.Accept(context.Background())
		fmt.Println("accepted", c)
	}
	// Output:
	// RSS puts the flow on shard 0
	// fourth: socktable: accept backlog full
	// shard 0's queue: 2 listener's: 3
	// accepted conn-a
	// accepted conn-c
	// accepted conn-b
}
