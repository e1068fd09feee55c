// Package stattest holds the statistical checks the tests share: whether
// counts drawn by a hash or a choice are spread as evenly as chance
// allows. Only tests import it.
package stattest

import "math"

// ChiSquareUniform tests counts against the uniform distribution over
// len(counts) cells, two-sided, at significance p = 0.001 in each tail
// (the Wilson–Hilferty approximation of the chi-square quantiles, good
// for the few degrees of freedom upwards the tests use, with at least a
// few dozen expected per cell). It returns the statistic, the acceptance
// interval, and whether the statistic lies in it: too low is as suspect
// as too high (counts more even than chance means structure).
func ChiSquareUniform(counts []int) (stat, lo, hi float64, ok bool) {
	total := 0
	for _, c := range counts {
		total += c
	}
	expected := float64(total) / float64(len(counts))
	for _, c := range counts {
		d := float64(c) - expected
		stat += d * d / expected
	}
	const z = 3.0902 // standard normal quantile for p = 0.001
	df := float64(len(counts) - 1)
	q := func(z float64) float64 {
		c := 2 / (9 * df)
		return df * math.Pow(1-c+z*math.Sqrt(c), 3)
	}
	lo, hi = q(-z), q(z)
	return stat, lo, hi, stat >= lo && stat <= hi
}
