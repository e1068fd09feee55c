// Package pshard gives each P (each core running Go code) a small number
// of its own, so that structures striped by it (counters, timer-wheel
// shards) are written mostly by one core: stripes chosen by key or at
// random are written by every core in turn, and each write then pulls the
// line from the core that wrote it last.
package pshard

import _ "unsafe" // for go:linkname

// Max is the number of distinct values Current returns; Ps beyond it share.
const Max = 64

// procPin and procUnpin are the runtime's: procPin returns the calling
// goroutine's P id and keeps it on that P until procUnpin. The runtime
// keeps both linkable and their signatures fixed for the packages that
// use them so (sync.Pool's own per-P caches rest on them). Reading the id
// this way costs a few instructions; the portable alternative, a token
// per P cached in a sync.Pool, cost two Pool calls, about a fifth of a
// timer schedule and cancel.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// Current returns the calling P's number, in [0, Max): the P's id modulo
// Max. It is a hint: the goroutine may move to another P at any moment
// after it returns. It is wait-free and allocates nothing.
func Current() uint32 {
	id := procPin()
	procUnpin()
	return uint32(id) & (Max - 1)
}
