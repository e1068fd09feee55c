//go:build !race

package tuple_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

func TestHashAllocatesNothing(t *testing.T) {
	h := tuple.NewHasher()
	k := tuple.MustNew("10.0.0.1:80", "10.0.0.2:1234")
	var sink uint64
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		sink += h.Hash(k) + h.HashEndpoint(k.Local) + uint64(tuple.Shard(sink, 7))
	}))
	_ = sink
}
