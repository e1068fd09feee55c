package socktable_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/internal/stattest"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The two choices a stack makes from one flow hash — which SO_REUSEPORT
// member takes a SYN (the listener index) and which shard's accept queue
// the connection is steered to (accept.Sharded.Steer) — are independent:
// with M members and S shards every (member, shard) pair gets its share,
// non-powers of two included (chi-square, p = 0.001). Taking the same bits
// for both tied member i to shard i·S/M, so most shards' acceptors got no
// local work.
func TestReuseportMemberAndShardIndependent(t *testing.T) {
	for _, c := range []struct{ members, shards int }{{4, 2}, {2, 4}, {3, 2}, {5, 3}, {4, 4}, {6, 4}} {
		t.Run(fmt.Sprintf("members=%d/shards=%d", c.members, c.shards), func(t *testing.T) {
			hasher := tuple.NewHasher()
			ports, err := table.NewPorts(table.PortsOptions{Hasher: hasher})
			require.NoError(t, err)
			idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
			require.NoError(t, err)
			for m := range c.members {
				b, err := ports.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true})
				require.NoError(t, err)
				_, err = idx.Listen(b, m)
				require.NoError(t, err)
			}
			q, err := accept.NewSharded[int](accept.ShardedOptions{Shards: c.shards})
			require.NoError(t, err)
			dst := tuple.MustEndpoint("192.0.2.1:443")
			const flows = 24000
			counts := make([]int, c.members*c.shards)
			for i := range flows {
				src := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: uint16(1024 + i%50000)}
				h := hasher.Hash(tuple.Tuple{Local: dst, Remote: src}) // the flow hashed once
				l, ok := idx.LookupHashed(h, dst, src, 0)
				require.True(t, ok)
				counts[l.Value()*c.shards+q.Steer(h)]++
			}
			stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
			require.True(t, ok, "chi-square %.1f outside [%.1f, %.1f]: joint counts %v", stat, lo, hi, counts)
		})
	}
}
