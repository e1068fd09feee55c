package tuple_test

import (
	"fmt"
	"math"
	"math/bits"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/stattest"
	"github.com/socktable/socktable/tuple"
)

// Key sets that real servers see. Each returns n tuples from the server's
// point of view (Local = the server).
var keySets = map[string]func(n int) []tuple.Tuple{
	// One listener, clients behind a few addresses, ports in order: the
	// common case, and the one a weak hash handles worst.
	"few-clients-sequential-ports": func(n int) []tuple.Tuple {
		local := tuple.MustEndpoint("10.0.0.1:443")
		var out []tuple.Tuple
		for i := 0; len(out) < n; i++ {
			client := tuple.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%4)})
			out = append(out, tuple.Tuple{Local: local, Remote: tuple.Endpoint{Addr: client, Port: uint16(1024 + i/4)}})
		}
		return out
	},
	// One client, every port: a load generator.
	"one-client-all-ports": func(n int) []tuple.Tuple {
		local := tuple.MustEndpoint("10.0.0.1:80")
		client := tuple.MustAddr("10.0.0.2")
		var out []tuple.Tuple
		for i := 0; len(out) < n; i++ {
			out = append(out, tuple.Tuple{Local: local, Remote: tuple.Endpoint{Addr: client, Port: uint16(1 + i%65535)}})
		}
		return out
	},
	// A NAT pool or a /16 of clients, each with a handful of ports.
	"many-clients-few-ports": func(n int) []tuple.Tuple {
		local := tuple.MustEndpoint("10.0.0.1:443")
		var out []tuple.Tuple
		for i := 0; len(out) < n; i++ {
			client := tuple.AddrFrom4([4]byte{100, 64, byte(i >> 10), byte(i >> 2)})
			out = append(out, tuple.Tuple{Local: local, Remote: tuple.Endpoint{Addr: client, Port: uint16(40000 + i%4)}})
		}
		return out
	},
	// IPv6 clients in one /64, differing only in the interface id's low bits.
	"ipv6-clients": func(n int) []tuple.Tuple {
		local := tuple.MustEndpoint("[2001:db8::1]:443")
		var out []tuple.Tuple
		for i := 0; len(out) < n; i++ {
			b := tuple.MustAddr("2001:db8:0:1::").As16()
			b[14], b[15] = byte(i>>8), byte(i)
			out = append(out, tuple.Tuple{Local: local, Remote: tuple.Endpoint{Addr: tuple.AddrFrom16(b), Port: uint16(50000 + i%16)}})
		}
		return out
	},
	// Outgoing connections from many local ports to a few services, IPv4
	// and IPv6 interleaved (a proxy's upstream side).
	"mixed-v4-v6-outgoing": func(n int) []tuple.Tuple {
		l4, l6 := tuple.MustAddr("10.0.0.1"), tuple.MustAddr("2001:db8::1")
		r4, r6 := tuple.MustAddr("10.9.0.1"), tuple.MustAddr("2001:db8:9::1")
		var out []tuple.Tuple
		for i := 0; len(out) < n; i++ {
			port := uint16(32768 + i/2%28232)
			svc := uint16(8080 + i/56464)
			if i%2 == 0 {
				out = append(out, tuple.Tuple{Local: tuple.Endpoint{Addr: l4, Port: port}, Remote: tuple.Endpoint{Addr: r4, Port: svc}})
			} else {
				out = append(out, tuple.Tuple{Local: tuple.Endpoint{Addr: l6, Port: port}, Remote: tuple.Endpoint{Addr: r6, Port: svc}})
			}
		}
		return out
	},
}

// Bucket choices the tables make from one hash.
var bucketings = map[string]func(h uint64, n int) int{
	"low-bits-mask": func(h uint64, n int) int { return int(h & uint64(n-1)) }, // n is a power of two
	"high-bits":     func(h uint64, n int) int { return int(h >> (64 - bits.TrailingZeros(uint(n)))) },
	"shard":         tuple.Shard,
}

func TestHashDistribution(t *testing.T) {
	n := 1 << 16
	if testing.Short() {
		n = 1 << 14
	}
	const buckets = 256 // expected 64 (or 256) keys per bucket: chi-square is accurate there
	for name, gen := range keySets {
		keys := gen(n)
		for bname, bucket := range bucketings {
			for seed := uint64(1); seed <= 3; seed++ {
				h := tuple.NewHasherForTest(seed)
				counts := make([]int, buckets)
				for _, k := range keys {
					counts[bucket(h.Hash(k), buckets)]++
				}
				stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
				require.Truef(t, ok, "%s/%s/seed=%d: chi-square %.1f outside [%.1f, %.1f] (p=0.001 each tail, df=%d)",
					name, bname, seed, stat, lo, hi, buckets-1)
			}
		}
	}
}

func TestChiSquareRejectsWeakHashes(t *testing.T) {
	keys := keySets["few-clients-sequential-ports"](1 << 14)
	for name, weak := range map[string]func(tuple.Tuple) uint64{
		"port-only (too even)": func(k tuple.Tuple) uint64 { return uint64(k.Remote.Port) },
		"address-only (clumped)": func(k tuple.Tuple) uint64 {
			b := k.Remote.Addr.As16()
			return uint64(b[15]) * 0x9e3779b97f4a7c15
		},
	} {
		counts := make([]int, 256)
		for _, k := range keys {
			counts[weak(k)&255]++
		}
		_, _, _, ok := stattest.ChiSquareUniform(counts)
		require.Falsef(t, ok, "%s should fail the distribution test", name)
	}
}

// TestHashAvalanche flips each of the 288 bits of a tuple and checks that
// every output bit flips with probability close to 1/2.
func TestHashAvalanche(t *testing.T) {
	samples := 2000
	if testing.Short() {
		samples = 500
	}
	h := tuple.NewHasherForTest(42)
	keys := keySets["many-clients-few-ports"](samples)
	flip := func(k tuple.Tuple, bit int) tuple.Tuple {
		l, r := k.Local.Addr.As16(), k.Remote.Addr.As16()
		switch {
		case bit < 128:
			l[bit/8] ^= 1 << (bit % 8)
		case bit < 256:
			r[(bit-128)/8] ^= 1 << (bit % 8)
		case bit < 272:
			k.Local.Port ^= 1 << (bit - 256)
		default:
			k.Remote.Port ^= 1 << (bit - 272)
		}
		k.Local.Addr, k.Remote.Addr = tuple.AddrFrom16(l), tuple.AddrFrom16(r)
		return k
	}
	worst := 0.0
	for bit := 0; bit < 288; bit++ {
		var flips [64]int
		for _, k := range keys {
			d := h.Hash(k) ^ h.Hash(flip(k, bit))
			for o := range 64 {
				flips[o] += int(d >> o & 1)
			}
		}
		for o, f := range flips {
			p := float64(f) / float64(len(keys))
			worst = math.Max(worst, math.Abs(p-0.5))
			// 6 standard deviations of a fair coin over the sample.
			require.InDeltaf(t, 0.5, p, 6*0.5/math.Sqrt(float64(len(keys))),
				"input bit %d -> output bit %d flips with p=%.3f", bit, o, p)
		}
	}
	t.Logf("worst avalanche bias %.4f over %d samples", worst, samples)
}

func TestHasherKeyed(t *testing.T) {
	k := tuple.MustNew("10.0.0.1:80", "10.0.0.2:1234")
	a, b := tuple.NewHasher(), tuple.NewHasher()
	require.Equal(t, a.Hash(k), a.Hash(k), "deterministic for one key")
	require.NotEqual(t, a.Hash(k), b.Hash(k), "two stacks get different secrets")
	require.NotEqual(t, tuple.NewHasherForTest(1).Hash(k), tuple.NewHasherForTest(2).Hash(k))
	e := tuple.MustEndpoint("10.0.0.1:80")
	require.Equal(t, a.HashEndpoint(e), a.HashEndpoint(e))
	require.NotEqual(t, a.HashEndpoint(e), b.HashEndpoint(e))
	require.NotEqual(t, a.HashEndpoint(e), a.HashEndpoint(tuple.MustEndpoint("10.0.0.1:81")))
	require.NotEqual(t, a.Hash(k), a.Hash(k.Reverse()), "direction matters")
}

func TestHashEndpointDistribution(t *testing.T) {
	h := tuple.NewHasherForTest(7)
	// Listeners: a few addresses, consecutive ports.
	counts := make([]int, 256)
	total := 0
	for a := range 4 {
		for p := range 4096 {
			e := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 0, 0, byte(a + 1)}), Port: uint16(8000 + p)}
			counts[h.HashEndpoint(e)&255]++
			total++
		}
	}
	stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
	require.Truef(t, ok, "chi-square %.1f outside [%.1f, %.1f]", stat, lo, hi)
}

func TestShard(t *testing.T) {
	require.Equal(t, 0, tuple.Shard(12345, 0))
	require.Equal(t, 0, tuple.Shard(^uint64(0), 1))
	require.Equal(t, 0, tuple.Shard(0, 7))
	require.Equal(t, 6, tuple.Shard(^uint64(0), 7))
	for _, n := range []int{2, 3, 7, 100, 1000, 1 << 20} {
		// Equal slices of the hash space map to each shard: no modulo bias.
		for s := range min(n, 64) {
			lo := uint64(s) * (math.MaxUint64 / uint64(n))
			require.Equalf(t, s, tuple.Shard(lo+(math.MaxUint64/uint64(n))/2, n), "n=%d s=%d", n, s)
		}
		require.Equal(t, n-1, tuple.Shard(math.MaxUint64, n))
	}
	t.Run("uniform-over-3", func(t *testing.T) {
		h := tuple.NewHasherForTest(9)
		counts := make([]int, 3)
		keys := keySets["one-client-all-ports"](30000)
		for _, k := range keys {
			counts[tuple.Shard(h.Hash(k), 3)]++
		}
		stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
		require.True(t, ok, fmt.Sprintf("chi-square %.2f outside [%.2f, %.2f]", stat, lo, hi))
	})
}

func TestSteer(t *testing.T) {
	require.Equal(t, 0, tuple.Steer(12345, 0))
	require.Equal(t, 0, tuple.Steer(^uint64(0), 1))
	require.Equal(t, 6, tuple.Steer(0xffffffff, 7))
	require.Equal(t, 0, tuple.Steer(0xffffffff00000000, 7), "the high half is not read")
	for _, n := range []int{2, 3, 7, 100} {
		for s := range n {
			lo := uint64(s) * (math.MaxUint32 / uint64(n))
			require.Equalf(t, s, tuple.Steer(lo+(math.MaxUint32/uint64(n))/2, n), "n=%d s=%d", n, s)
		}
	}
}

// TestShardSteerIndependent checks the joint distribution of the two
// choices a stack makes from one flow hash, the SO_REUSEPORT member
// (Shard) and the accept shard (Steer), with a chi-square over every
// (member, shard) cell: taking the same bits for both would leave most
// cells empty (member i reaching only shard i·shards/members).
func TestShardSteerIndependent(t *testing.T) {
	keys := keySets["few-clients-sequential-ports"](1 << 15)
	for _, c := range []struct{ members, shards int }{{4, 2}, {2, 4}, {3, 2}, {5, 3}, {4, 4}, {7, 16}, {2, 2}} {
		t.Run(fmt.Sprintf("members=%d/shards=%d", c.members, c.shards), func(t *testing.T) {
			h := tuple.NewHasherForTest(uint64(c.members*100 + c.shards))
			counts := make([]int, c.members*c.shards)
			for _, k := range keys {
				f := h.Hash(k)
				counts[tuple.Shard(f, c.members)*c.shards+tuple.Steer(f, c.shards)]++
			}
			stat, lo, hi, ok := stattest.ChiSquareUniform(counts)
			require.Truef(t, ok, "chi-square %.1f outside [%.1f, %.1f]: %v", stat, lo, hi, counts)
		})
	}
	// The check can fail: the same bits for both choices.
	h := tuple.NewHasherForTest(1)
	counts := make([]int, 8)
	for _, k := range keys {
		f := h.Hash(k)
		counts[tuple.Shard(f, 4)*2+tuple.Shard(f, 2)]++
	}
	_, _, _, ok := stattest.ChiSquareUniform(counts)
	require.False(t, ok, "correlated choices must fail the test: %v", counts)
}
