package rcu_test

import (
	"fmt"

	"github.com/socktable/socktable/rcu"
)

// A read-mostly routing table: readers load a snapshot without locking,
// a writer publishes a modified copy.
func ExamplePointer() {
	type routes struct{ next map[string]string }
	var table rcu.Pointer[routes]
	table.Publish(&routes{next: map[string]string{"10.0.0.0/8": "eth0"}})

	// Writer: copy, modify the copy, publish it.
	table.Update(func(old *routes) *routes {
		n := &routes{next: make(map[string]string, len(old.next)+1)}
		for k, v := range old.next {
			n.next[k] = v
		}
		n.next["192.168.0.0/16"] = "eth1"
		return n
	})

	// Reader: one atomic load; the snapshot never changes under it.
	snap := table.Load()
	fmt.Println(len(snap.next), snap.next["192.168.0.0/16"])
	// Output: 2 eth1
}

// A free list of nodes that readers may still be reading: a node comes
// back from Reuse only after every reader that could hold it has left.
func ExampleRecycler() {
	type node struct{ value int }
	d := rcu.NewDomain()
	free, _ := rcu.NewRecycler[*node](d, 1024)
	var current rcu.Pointer[node]
	current.Publish(&node{value: 1})

	g := d.Enter() // a reader...
	held := current.Load()

	old := current.Swap(&node{value: 2}) // ...while the writer replaces the node
	free.Retire(old)
	_, ok := free.Reuse()
	fmt.Println("reusable while the reader holds it:", ok, held.value)

	g.Exit()
	n, ok := free.Reuse()
	fmt.Println("reusable after Exit:", ok, n == old)
	// Output:
	// reusable while the reader holds it: false 1
	// reusable after Exit: true true
}

// Synchronize waits for a grace period: readers that began before it have
// all left when it returns.
func ExampleDomain_Synchronize() {
	d := rcu.NewDomain()
	g := d.Enter()
	done := make(chan struct{})
	go func() {
		d.Synchronize()
		close(done)
	}()
	g.Exit() // Synchronize can finish only after this
	<-done
	fmt.Println("grace period over")
	// Output: grace period over
}
