package accept_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/socktable/socktable/accept"
)

// An accept queue between a receive path and an accept loop. The receive
// path enqueues the connections whose handshake completed and never waits:
// on a full backlog it drops the final ACK (Linux's
// tcp_abort_on_overflow=0). The accept loop blocks in Dequeue while the
// queue is empty. Closing the listener ends the accept loop, and Drain
// then hands back the connections never accepted, to be reset.
func ExampleQueue() {
	type conn struct{ peer string }
	q, err := accept.NewQueue[*conn](2)
	if err != nil {
		panic(err)
	}
	receive := func(peer string) {
		if err := q.TryEnqueue(&conn{peer}); err != nil {
			fmt.Printf("drop the final ACK from %s: %v\n", peer, err)
		}
	}
	receive("198.51.100.7:40000")
	receive("198.51.100.8:40001")
	receive("198.51.100.9:40002") // the backlog holds 2

	accepted := make(chan string)
	go func() { // the accept loop
		defer close(accepted)
		for {
			c, err := q.Dequeue(context.Background())
			if err != nil {
				fmt.Println("accept loop ends:", errors.Is(err, accept.ErrClosed))
				return
			}
			accepted <- c.peer
		}
	}()
	fmt.Println("accepted", <-accepted)
	fmt.Println("accepted", <-accepted)
	receive("198.51.100.10:40003") // wakes the loop, waiting on the empty queue
	fmt.Println("accepted", <-accepted)

	_ = q.Close()
	for _, c := range q.Drain() { // the connections never accepted: none here
		fmt.Println("reset", c.peer)
	}
	<-accepted // the loop saw ErrClosed and ended
	receive("198.51.100.11:40004")
	// Output:
	// drop the final ACK from 198.51.100.9:40002: socktable: queue full
	// accepted 198.51.100.7:40000
	// accepted 198.51.100.8:40001
	// accepted 198.51.100.10:40003
	// accept loop ends: true
	// drop the final ACK from 198.51.100.11:40004: socktable: use of closed structure
}
