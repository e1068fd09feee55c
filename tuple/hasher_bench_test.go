package tuple_test

import (
	"encoding/binary"
	"hash/maphash"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/socktable/socktable/tuple"
)

var hashSink uint64

// benchTuples is a spread of server-side keys, cycled through by the
// benchmarks so the branch predictor cannot learn one key.
func benchTuples() []tuple.Tuple { return keySets["few-clients-sequential-ports"](1024) }

// BenchmarkHash compares keyed hash functions over the same tuples:
// impl=socktable is Hasher.Hash (wyhash-style folded multiplies);
// impl=xxhash is xxhash64 with a seed (the Digest API, the only seeded one
// in xxhash/v2) over the tuple's 36 bytes; impl=maphash is
// hash/maphash.Comparable with a random seed (AES-based on amd64).
func BenchmarkHash(b *testing.B) {
	keys := benchTuples()
	b.Run("impl=socktable", func(b *testing.B) {
		h := tuple.NewHasher()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			hashSink += h.Hash(keys[i&1023])
			i++
		}
	})
	b.Run("impl=xxhash", func(b *testing.B) {
		d := xxhash.NewWithSeed(0x5eed)
		b.ReportAllocs()
		var buf [36]byte
		i := 0
		for b.Loop() {
			k := keys[i&1023]
			l, r := k.Local.Addr.As16(), k.Remote.Addr.As16()
			copy(buf[0:16], l[:])
			copy(buf[16:32], r[:])
			binary.LittleEndian.PutUint16(buf[32:], k.Local.Port)
			binary.LittleEndian.PutUint16(buf[34:], k.Remote.Port)
			d.ResetWithSeed(0x5eed)
			_, _ = d.Write(buf[:])
			hashSink += d.Sum64()
			i++
		}
	})
	b.Run("impl=maphash", func(b *testing.B) {
		seed := maphash.MakeSeed()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			hashSink += maphash.Comparable(seed, keys[i&1023])
			i++
		}
	})
}

// BenchmarkHashEndpoint measures the listener-bucket hash.
func BenchmarkHashEndpoint(b *testing.B) {
	keys := benchTuples()
	h := tuple.NewHasher()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		hashSink += h.HashEndpoint(keys[i&1023].Remote)
		i++
	}
}
