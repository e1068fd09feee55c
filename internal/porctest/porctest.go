// Package porctest holds what the packages' concurrency tests share: the
// record-and-check loop of the porcupine linearizability tests, runs at
// several GOMAXPROCS, and a small deterministic random generator for
// workload choices inside goroutines. Only tests import it.
package porctest

import (
	"fmt"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// PartitionBy splits a recorded history into independent ones, one per
// value of key (a tuple, a port): porcupine checks each on its own, which
// keeps the search small. Use it as a porcupine.Model's Partition.
func PartitionBy[K comparable](history []porcupine.Operation, key func(input any) K) [][]porcupine.Operation {
	parts := map[K][]porcupine.Operation{}
	for _, op := range history {
		k := key(op.Input)
		parts[k] = append(parts[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(parts))
	for _, ops := range parts {
		out = append(out, ops)
	}
	return out
}

// Recorder records a concurrent history for porcupine: each client (a
// goroutine) owns one slice, so recording takes no lock, and one logical
// clock orders every call and return. Call before the operation, Return
// after it, from the client's own goroutine.
type Recorder struct {
	clock   atomic.Int64
	clients [][]porcupine.Operation
}

// NewRecorder returns a Recorder for the given number of clients.
func NewRecorder(clients int) *Recorder {
	return &Recorder{clients: make([][]porcupine.Operation, clients)}
}

// Call returns the timestamp of an operation's call.
func (r *Recorder) Call() int64 { return r.clock.Add(1) }

// Return records client's operation, called at call (from Call), with its
// input and output, returning now.
func (r *Recorder) Return(client int, call int64, input, output any) {
	r.clients[client] = append(r.clients[client], porcupine.Operation{
		ClientId: client, Input: input, Output: output, Call: call, Return: r.clock.Add(1)})
}

// History returns every recorded operation. Call it after the clients
// have finished.
func (r *Recorder) History() []porcupine.Operation {
	var all []porcupine.Operation
	for _, ops := range r.clients {
		all = append(all, ops...)
	}
	return all
}

// Check fails t unless history is linearizable under model, checking for
// at most timeout (an unfinished check fails too: a history too large to
// check proves nothing). On failure it writes porcupine's visualization
// of the history to a file in t's temporary directory and names it, and
// logs the first failing partition's operations in call order.
func Check(t testing.TB, model porcupine.Model, history []porcupine.Operation, timeout time.Duration) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	if res == porcupine.Ok {
		return
	}
	path := t.TempDir() + "/history.html"
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		path = "(not written: " + err.Error() + ")"
	}
	// The first partition that fails, in call order: usually enough to
	// see the interleaving without opening the visualization.
	for _, part := range model.Partition(history) {
		if porcupine.CheckOperations(model, part) {
			continue
		}
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		for i, op := range part {
			if i == maxLoggedOps {
				t.Logf("... %d more", len(part)-i)
				break
			}
			t.Logf("client %d [%d,%d] %s", op.ClientId, op.Call, op.Return, model.DescribeOperation(op.Input, op.Output))
		}
		break
	}
	t.Fatalf("history of %d operations is not linearizable (%v); visualization: %s", len(history), res, path)
}

// maxLoggedOps bounds the operations Check logs of a failing partition.
const maxLoggedOps = 400

// Procs are the GOMAXPROCS values the concurrency tests run at: one P
// (every interleaving is a preemption), a few, and more than this
// machine's cores.
var Procs = []int{1, 2, 4, 8}

// AtProcs runs f as a subtest "procs=N" at each GOMAXPROCS of procs (nil:
// Procs), restoring the setting after each.
func AtProcs(t *testing.T, procs []int, f func(t *testing.T)) {
	t.Helper()
	if procs == nil {
		procs = Procs
	}
	for _, p := range procs {
		t.Run(fmt.Sprintf("procs=%d", p), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(p))
			f(t)
		})
	}
}

// Rand is a xorshift64 generator: deterministic for a seed, cheap enough
// to call between the operations of a stress test without hiding races,
// and safe to keep one per goroutine (it is not safe for concurrent use).
type Rand struct{ x uint64 }

// NewRand returns a generator for seed (any value; 0 is remapped).
func NewRand(seed uint64) *Rand {
	r := &Rand{x: seed*0x9e3779b97f4a7c15 | 1}
	r.Next()
	return r
}

// Next returns the next 64-bit value.
func (r *Rand) Next() uint64 {
	r.x ^= r.x << 13
	r.x ^= r.x >> 7
	r.x ^= r.x << 17
	return r.x
}

// IntN returns a value in [0, n) (n > 0), with the slight modulo bias a
// test workload does not care about.
func (r *Rand) IntN(n int) int { return int(r.Next() % uint64(n)) }
