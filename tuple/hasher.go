package tuple

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// Hasher hashes tuples and endpoints with a secret key, so an attacker who
// chooses addresses and ports cannot predict which bucket a flow lands in
// (hash flooding). Create it with NewHasher, once per stack: all the tables
// of a stack share it, so a flow is hashed once and the same value serves
// the established lookup, the SO_REUSEPORT member choice and shard steering.
//
// The function is a wyhash-style folded multiply ("mum") over the tuple's
// five machine words, each xored with its own 64-bit key word;
// BenchmarkHash compares it with seeded xxhash and hash/maphash, and it
// passes the same distribution and avalanche tests. Like Linux's
// jhash-based inet_ehashfn it is keyed but not a cryptographic PRF; where
// an output is shown to the peer (ephemeral port offsets, syncookies), use
// a PRF such as SipHash instead.
//
// A Hasher is immutable after NewHasher and safe for concurrent use by any
// number of goroutines; Hash and HashEndpoint are wait-free and allocate
// nothing. The zero Hasher has an all-zero key and must not be used.
type Hasher struct {
	k [8]uint64 // immutable after NewHasher
}

// NewHasher returns a Hasher keyed with 512 bits from crypto/rand.
func NewHasher() *Hasher {
	var seed [64]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails; it aborts the program if the OS cannot supply entropy
	return newHasherFromBytes(seed)
}

func newHasherFromBytes(seed [64]byte) *Hasher {
	h := new(Hasher)
	for i := range h.k {
		h.k[i] = binary.LittleEndian.Uint64(seed[8*i:])
	}
	return h
}

// mum is the folded 64×64→128-bit multiply: every output bit depends on
// every bit of both operands.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// Hash returns the keyed 64-bit hash of t. All 64 bits are well mixed:
// take low bits with a mask for a power-of-two table, or use Shard.
// v4-mapped and IPv4 addresses are one key, so they hash alike.
func (h *Hasher) Hash(t Tuple) uint64 {
	l0, l1 := t.Local.Addr.words()
	r0, r1 := t.Remote.Addr.words()
	ports := uint64(t.Local.Port)<<16 | uint64(t.Remote.Port)
	a := mum(l0^h.k[0], l1^h.k[1])
	b := mum(r0^h.k[2], r1^h.k[3])
	c := mum(a^ports^h.k[4], b^h.k[5])
	// One more round: when only the ports vary, c alone is spread but
	// structured (its low bits too even); a second multiply by a key word
	// makes it look random (TestHashDistribution, TestHashAvalanche).
	return mum(c^h.k[6], h.k[7])
}

// HashEndpoint returns the keyed hash of one endpoint (a listener's bucket
// key). It is not related to Hash of any tuple.
func (h *Hasher) HashEndpoint(e Endpoint) uint64 {
	a0, a1 := e.Addr.words()
	a := mum(a0^h.k[0], a1^h.k[1])
	c := mum(a^uint64(e.Port)^h.k[4], h.k[2])
	return mum(c^h.k[6], h.k[3])
}

// Shard maps a hash onto [0, n) by multiply-shift: the high 64 bits of
// hash×n (Linux's reciprocal_scale on the full word). It needs no division
// and has no modulo bias; it uses the hash's high bits, so it stays
// independent of a table index taken from the low bits. n must be at least
// 1; Shard returns 0 for n < 1.
func Shard(hash uint64, n int) int {
	if n < 1 {
		return 0
	}
	hi, _ := bits.Mul64(hash, uint64(n))
	return int(hi)
}

// Steer maps a flow hash onto [0, n) for the second choice a stack makes
// from the same hash: which shard (core, accept queue) a flow is steered
// to, where Shard picks a SO_REUSEPORT member or a table's home. It scales
// the hash's low 32 bits (multiply-shift), which Shard(hash, m) hardly
// reads for any m, so the two choices are independent: with 4 members and
// 2 shards every member reaches both shards, where taking the same bits
// twice would tie member i to shard i/2. n must be at least 1 and at most
// 2^32; Steer returns 0 for n < 1.
func Steer(hash uint64, n int) int {
	if n < 1 {
		return 0
	}
	return int(uint64(uint32(hash)) * uint64(n) >> 32)
}
