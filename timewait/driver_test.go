package timewait

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// The reciprocal divider agrees with the division instruction for every
// divisor size and dividends up to 2^63-1.
func TestDriverDividerExact(t *testing.T) {
	rnd := porctest.NewRand(2)
	divisors := []uint64{1, 2, 3, 7, 1000, 1_000_000, 1e9, 1<<32 - 1, 1 << 32, 1<<63 - 1}
	for range 200 {
		divisors = append(divisors, rnd.Next()>>(1+rnd.IntN(63)))
	}
	for _, d := range divisors {
		if d == 0 {
			continue
		}
		v := newDivider(d)
		for _, n := range []uint64{0, 1, d - 1, d, d + 1, 2*d - 1, 1<<63 - 1, 1<<63 - 1 - d} {
			q, r := v.divMod(n)
			require.Equal(t, [2]uint64{n / d, n % d}, [2]uint64{q, r}, "%d / %d", n, d)
		}
		for range 500 {
			n := rnd.Next() >> (1 + rnd.IntN(63))
			q, r := v.divMod(n)
			require.Equal(t, [2]uint64{n / d, n % d}, [2]uint64{q, r}, "%d / %d", n, d)
		}
	}
}
