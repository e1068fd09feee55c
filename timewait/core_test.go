package timewait

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// bucketByScan is bucketOf's definition, searched from level 0 up.
func bucketByScan(clk, due int64, levels int) (int, int64) {
	for l := range levels {
		shift := uint(l * levelClkShift)
		slot := (due-1)>>shift + 1
		if slot-clk>>shift <= levelReach {
			return l, slot
		}
	}
	l := levels - 1
	return l, clk>>(l*levelClkShift) + levelReach
}

// bucketOf starts its search at the level the distance's bit length
// allows; it finds the same bucket as a scan from level 0, at every
// distance (each bit length, and its edges) and clock alignment, up to
// the end of the clock's range.
func TestCoreBucketOfMatchesScan(t *testing.T) {
	rnd := porctest.NewRand(1)
	for _, levels := range []int{1, 2, 8, 9, maxLevels} {
		var c wheelCore[link]
		c.init(levels, 0)
		for range 20000 {
			c.clk = int64(rnd.Next() >> (1 + rnd.IntN(63)))
			w := 1 + rnd.IntN(62)
			delta := int64(1)<<(w-1) + int64(rnd.Next()&(1<<(w-1)-1))
			switch rnd.IntN(4) { // the edges of the bit length, and of level reaches
			case 0:
				delta = int64(1)<<w - 1
			case 1:
				delta = int64(levelReach) << (levelClkShift * rnd.IntN(maxLevels))
				delta += int64(rnd.IntN(3)) - 1
			}
			delta = max(delta, 1)
			if c.clk > math.MaxInt64-delta {
				c.clk = math.MaxInt64 - delta
			}
			due := c.clk + delta
			gotL, gotS := c.bucketOf(due)
			wantL, wantS := bucketByScan(c.clk, due, levels)
			require.Equal(t, [2]int64{int64(wantL), wantS}, [2]int64{int64(gotL), gotS},
				"levels %d clk %d due %d", levels, c.clk, due)
			shift := uint(gotL * levelClkShift)
			if ceil := (due-1)>>shift + 1; ceil-c.clk>>shift <= levelReach {
				require.Equal(t, ceil, gotS, "due rounded up to the level's granularity: never early")
			} else {
				require.Equal(t, levels-1, gotL, "only the top level takes a timer beyond its reach")
			}
		}
	}
}
