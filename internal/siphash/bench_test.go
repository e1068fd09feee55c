package siphash_test

import (
	"testing"

	"github.com/socktable/socktable/internal/siphash"
)

var sink uint64

// BenchmarkSum64 hashes byte strings of the sizes the fast paths cover,
// for comparison with BenchmarkWords.
func BenchmarkSum64(b *testing.B) {
	k := siphash.NewKey()
	for _, n := range []int{24, 40, 48} {
		buf := make([]byte, n)
		b.Run("bytes="+itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				sink += siphash.Sum64(k.K0, k.K1, buf)
			}
		})
	}
}

// BenchmarkWords measures the word fast paths, on inputs of the sizes
// BenchmarkSum64 hashes as bytes.
func BenchmarkWords(b *testing.B) {
	k := siphash.NewKey()
	b.Run("words=3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += siphash.Words3(k.K0, k.K1, 1, 2, 3)
		}
	})
	b.Run("words=5", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += siphash.Words5(k.K0, k.K1, 1, 2, 3, 4, 5)
		}
	})
	b.Run("words=6", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += siphash.Words6(k.K0, k.K1, 1, 2, 3, 4, 5, 6)
		}
	})
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
