package main

import (
	"math"
	"time"
)

// hist is a log-bucketed histogram of costs in nanoseconds: 16 buckets per
// doubling (a bucket spans 4.4%, a percentile reads its geometric middle,
// within 2.2% of the true value), from 1/16 ns to hours. One per worker,
// merged at the end; not safe for concurrent use.
type hist struct {
	counts [histBuckets]int64
	n      int64
}

const (
	histPerOctave = 16
	histBuckets   = 48 * histPerOctave
	histOffset    = 4 * histPerOctave // values down to 2^-4 ns
)

func (h *hist) add(ns float64) {
	i := 0
	if ns > 0 {
		i = int(math.Floor(math.Log2(ns)*histPerOctave)) + histOffset
	}
	h.counts[min(max(i, 0), histBuckets-1)]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	h.n += o.n
}

// quantile returns the cost at or below which a fraction q of the values
// fall; 0 for an empty histogram (JSON has no NaN).
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return math.Exp2((float64(i-histOffset) + 0.5) / histPerOctave)
		}
	}
	return math.NaN()
}

// clockCost measures what one read of the monotonic clock costs, the
// overhead every timed round carries and has subtracted.
func clockCost() float64 {
	const reads = 200000
	best := math.Inf(1)
	for range 5 {
		start := time.Now()
		var sink time.Duration
		for range reads {
			sink += time.Since(start)
		}
		total := time.Since(start)
		if sink < 0 {
			panic("clock went backwards")
		}
		best = min(best, float64(total.Nanoseconds())/reads)
	}
	return best
}
