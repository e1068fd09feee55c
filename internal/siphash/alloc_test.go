//go:build !race

package siphash_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/siphash"
)

// TestSipHashNoAllocs checks that Sum64 and the word fast paths allocate
// nothing (the race detector's instrumentation does, hence the build tag).
func TestSipHashNoAllocs(t *testing.T) {
	k := siphash.NewKey()
	buf := make([]byte, 61)
	var sink uint64
	require.Zero(t, testing.AllocsPerRun(100, func() {
		sink += siphash.Sum64(k.K0, k.K1, buf)
		sink += siphash.Words3(k.K0, k.K1, sink, 2, 3)
		sink += siphash.Words5(k.K0, k.K1, sink, 2, 3, 4, 5)
		sink += siphash.Words6(k.K0, k.K1, sink, 2, 3, 4, 5, 6)
	}))
	_ = sink
}
