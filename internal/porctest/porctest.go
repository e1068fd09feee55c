// Package porctest holds what the packages' porcupine linearizability
// tests share. Only tests import it.
package porctest

import "github.com/anishathalye/porcupine"

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
