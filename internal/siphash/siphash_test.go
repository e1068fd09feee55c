package siphash_test

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/socktable/socktable/internal/siphash"
)

// refKey is the key of the reference vectors, bytes 00 to 0f.
var refKey = siphash.KeyFromBytes([16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})

func TestSum64ReferenceVectors(t *testing.T) {
	require.Equal(t, siphash.Key{K0: 0x0706050403020100, K1: 0x0f0e0d0c0b0a0908}, refKey)
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, v := range vectors64 {
		want, err := hex.DecodeString(v)
		require.NoError(t, err)
		got := siphash.Sum64(refKey.K0, refKey.K1, msg[:n])
		require.Equalf(t, binary.LittleEndian.Uint64(want), got, "message of %d bytes", n)
	}
	// The paper's appendix prints the 15-byte vector as a number.
	require.Equal(t, uint64(0xa129ca6149be45e5), siphash.Sum64(refKey.K0, refKey.K1, msg[:15]))
}

// le returns the little-endian encoding of w, as Sum64 reads words.
func le(w ...uint64) []byte {
	b := make([]byte, 0, 8*len(w))
	for _, x := range w {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

// TestWordsMatchSum64 checks the fast paths against Sum64 over the
// little-endian encoding of their words: on the reference message (whose
// 24, 40 and 48-byte prefixes are vectors), then on random keys and words.
func TestWordsMatchSum64(t *testing.T) {
	msg := make([]byte, 48)
	for i := range msg {
		msg[i] = byte(i)
	}
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(msg[8*i:]) }
	k0, k1 := refKey.K0, refKey.K1
	vec := func(n int) uint64 {
		b, err := hex.DecodeString(vectors64[n])
		require.NoError(t, err)
		return binary.LittleEndian.Uint64(b)
	}
	require.Equal(t, vec(24), siphash.Words3(k0, k1, w(0), w(1), w(2)))
	require.Equal(t, vec(40), siphash.Words5(k0, k1, w(0), w(1), w(2), w(3), w(4)))
	require.Equal(t, vec(48), siphash.Words6(k0, k1, w(0), w(1), w(2), w(3), w(4), w(5)))

	rapid.Check(t, func(t *rapid.T) {
		k0, k1 := rapid.Uint64().Draw(t, "k0"), rapid.Uint64().Draw(t, "k1")
		w := rapid.SliceOfN(rapid.Uint64(), 6, 6).Draw(t, "w")
		if got, want := siphash.Words3(k0, k1, w[0], w[1], w[2]), siphash.Sum64(k0, k1, le(w[:3]...)); got != want {
			t.Fatalf("Words3 = %#x, Sum64 = %#x", got, want)
		}
		if got, want := siphash.Words5(k0, k1, w[0], w[1], w[2], w[3], w[4]), siphash.Sum64(k0, k1, le(w[:5]...)); got != want {
			t.Fatalf("Words5 = %#x, Sum64 = %#x", got, want)
		}
		if got, want := siphash.Words6(k0, k1, w[0], w[1], w[2], w[3], w[4], w[5]), siphash.Sum64(k0, k1, le(w...)); got != want {
			t.Fatalf("Words6 = %#x, Sum64 = %#x", got, want)
		}
	})
}

// TestSum64KeyAndLengthMatter checks what the vectors cannot: the key
// reaches the output, and a message and its zero-extension differ (the
// length is hashed, not only the bytes).
func TestSum64KeyAndLengthMatter(t *testing.T) {
	msg := []byte("socktable")
	base := siphash.Sum64(1, 2, msg)
	require.NotEqual(t, base, siphash.Sum64(1, 3, msg))
	require.NotEqual(t, base, siphash.Sum64(0x8000000000000001, 2, msg))
	require.NotEqual(t, base, siphash.Sum64(1, 2, append(msg, 0)))
	require.NotEqual(t, siphash.Sum64(1, 2, nil), siphash.Sum64(1, 2, make([]byte, 8)))
}

func TestNewKey(t *testing.T) {
	a, b := siphash.NewKey(), siphash.NewKey()
	// Two 128-bit draws from crypto/rand agree with probability 2^-128.
	require.NotEqual(t, a, b)
	require.NotEqual(t, siphash.Key{}, a)
}
