// Package pshard gives each P (each core running Go code) a small number
// of its own, so that structures striped by it (counters, timer-wheel
// shards) are written mostly by one core: stripes chosen by key or at
// random are written by every core in turn, and each write then pulls the
// line from the core that wrote it last.
package pshard

import (
	"sync"
	"sync/atomic"
)

// Max is the number of distinct values Current returns; Ps beyond it share.
const Max = 64

// tokens caches a number per P. Pool.Get and Put on the same P return that
// P's own token without synchronization; tokens the pool drops at a
// garbage collection are replaced by fresh numbers, handed out round-robin.
// New returns a pointer into ids, so it allocates nothing.
var (
	tokens = sync.Pool{New: func() any { return &ids[next.Add(1)%Max] }}
	ids    = func() (ids [Max]uint32) {
		for i := range ids {
			ids[i] = uint32(i)
		}
		return ids
	}()
	next atomic.Uint32
)

// Current returns the calling P's number, in [0, Max). It is a hint: the
// goroutine may move to another P at any moment, and a P's number changes
// after a garbage collection. It allocates nothing.
func Current() uint32 {
	t := tokens.Get().(*uint32)
	id := *t
	tokens.Put(t)
	return id
}
