// Package siphash is SipHash-2-4, Aumasson and Bernstein's keyed
// pseudorandom function with a 128-bit key and a 64-bit output, for the
// values socktable shows to a peer and must keep unpredictable (RFC 6056
// ephemeral port offsets, SYN cookies), where tuple.Hasher's keyed hash,
// which is not a PRF, is not enough.
//
// Sum64 hashes any byte string. Words3, Words5 and Words6 hash 3, 5 and 6
// machine words (an address and a port with a counter; two addresses and a
// port, RFC 6056's input; a four-tuple and a counter, a SYN cookie's) with
// no byte buffer to fill: each returns exactly Sum64 over the
// little-endian encoding of its words (24, 40 or 48 bytes).
//
// Every function is pure: it reads only its arguments, allocates nothing,
// and is safe to call from any number of goroutines at once (wait-free).
package siphash

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// The initialisation constants, "somepseudorandomlygeneratedbytes" read
// as four big-endian words.
const (
	init0 = 0x736f6d6570736575
	init1 = 0x646f72616e646f6d
	init2 = 0x6c7967656e657261
	init3 = 0x7465646279746573
)

// Key is a SipHash key: K0 and K1 are the little-endian readings of the
// key's bytes 0-7 and 8-15 (the reference implementation's k0 and k1).
// Its zero value is a valid but public key; draw real ones with NewKey. A
// Key is a plain value: copy it freely, compare it with ==.
type Key struct {
	K0, K1 uint64
}

// NewKey returns a Key of 128 bits from crypto/rand.
func NewKey() Key {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it aborts the program if the OS cannot supply entropy
	return KeyFromBytes(b)
}

// KeyFromBytes returns the Key made of the 16 bytes b, as the reference
// implementation reads a key.
func KeyFromBytes(b [16]byte) Key {
	return Key{K0: binary.LittleEndian.Uint64(b[:8]), K1: binary.LittleEndian.Uint64(b[8:])}
}

// sipRound is one SipRound of the ARX network.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// Sum64 returns the SipHash-2-4 of data under the key (k0, k1).
func Sum64(k0, k1 uint64, data []byte) uint64 {
	v0, v1, v2, v3 := k0^init0, k1^init1, k0^init2, k1^init3
	// The last block holds the length's low byte in its top byte and the
	// 0-7 bytes left over below it.
	last := uint64(len(data)) << 56
	for ; len(data) >= 8; data = data[8:] {
		m := binary.LittleEndian.Uint64(data)
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	for i, c := range data {
		last |= uint64(c) << (8 * i)
	}
	return finish(v0, v1, v2, v3, last)
}

// Words3 returns Sum64(k0, k1, b) where b is the 24 bytes of w0, w1, w2,
// each encoded little-endian.
func Words3(k0, k1, w0, w1, w2 uint64) uint64 {
	w := [...]uint64{w0, w1, w2}
	return sumWords(k0, k1, w[:])
}

// Words5 returns Sum64(k0, k1, b) where b is the 40 bytes of w0 to w4,
// each encoded little-endian: for instance a local address, a remote
// address (two words each) and a port, the input of RFC 6056's port
// offset function.
func Words5(k0, k1, w0, w1, w2, w3, w4 uint64) uint64 {
	w := [...]uint64{w0, w1, w2, w3, w4}
	return sumWords(k0, k1, w[:])
}

// Words6 returns Sum64(k0, k1, b) where b is the 48 bytes of w0 to w5,
// each encoded little-endian: for instance a four-tuple (two addresses of
// two words and a word of ports) and a counter, the input of a SYN
// cookie.
func Words6(k0, k1, w0, w1, w2, w3, w4, w5 uint64) uint64 {
	w := [...]uint64{w0, w1, w2, w3, w4, w5}
	return sumWords(k0, k1, w[:])
}

// sumWords is Sum64 over the little-endian encoding of w (at most 31
// words, so that the length fits the last block's top byte), word by word
// with no byte loads.
func sumWords(k0, k1 uint64, w []uint64) uint64 {
	v0, v1, v2, v3 := k0^init0, k1^init1, k0^init2, k1^init3
	for _, m := range w {
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	return finish(v0, v1, v2, v3, uint64(8*len(w))<<56)
}

// finish absorbs the last block (length and leftover bytes), runs the four
// finalisation rounds and folds the state.
func finish(v0, v1, v2, v3, last uint64) uint64 {
	v3 ^= last
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= last
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ v1 ^ v2 ^ v3
}
