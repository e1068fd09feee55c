package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkEstablishedHitCacheShare is issue 19 §3's evidence: why a 1e6
// table's hits run at one speed in one process and near half of it in the
// next, or a minute later in the same one. Each op is one window, timed
// apart: 50,000 hits on the socktable table, then 20,000 loads of a
// dependent chase around a region as large as the table's metadata (so
// its latency says whether such a region stays in this VM's share of the
// shared L3: ~25 ns if it does, ~120 ns if it is evicted), then 5,000 of a
// chase around 64 MiB (DRAM latency). It reports, over the windows, the
// hits' and the chases' p10 and p90 in ns and the correlation of the
// hits' time with each chase's (corr-l3, corr-dram). Run it with
// -benchtime 150x, one process per vCPU at a time, pinned.
//
// What it showed (BENCHMARKS.md, bench/bimodal-19.txt): the hit time
// follows the metadata-sized chase, not the table; the slow mode is the
// metadata falling out of an L3 that other tenants of the host share.
func BenchmarkEstablishedHitCacheShare(b *testing.B) {
	n := size(1000000)
	b.Run("n=1e6/impl=socktable", func(b *testing.B) {
		t := getTables(b, "socktable", n)
		probes := getFixture(n).hits
		metaLines := t.st.Stats().Slots / slotsPerMetaWord / 8
		l3 := chaseRing(metaLines, 1)
		dram := chaseRing(64<<20/64, 2)
		const hitsPer, l3Per, dramPer = 50000, 20000, 5000
		hitNs, l3Ns, dramNs := make([]float64, 0, b.N), make([]float64, 0, b.N), make([]float64, 0, b.N)
		pi, ci, di, hits := 0, uint64(0), uint64(0), 0
		startTiming(b)
		for range b.N {
			t0 := time.Now()
			for range hitsPer {
				if _, ok := t.st.Lookup(probes[pi]); ok {
					hits++
				}
				if pi++; pi == len(probes) {
					pi = 0
				}
			}
			t1 := time.Now()
			for range l3Per {
				ci = l3[ci]
			}
			t2 := time.Now()
			for range dramPer {
				di = dram[di]
			}
			t3 := time.Now()
			hitNs = append(hitNs, float64(t1.Sub(t0).Nanoseconds())/hitsPer)
			l3Ns = append(l3Ns, float64(t2.Sub(t1).Nanoseconds())/l3Per)
			dramNs = append(dramNs, float64(t3.Sub(t2).Nanoseconds())/dramPer)
		}
		b.StopTimer()
		lookupHits.Add(int64(hits) + int64(ci&1) + int64(di&1))
		for _, m := range []struct {
			name string
			xs   []float64
		}{{"hit", hitNs}, {"l3chase", l3Ns}, {"dramchase", dramNs}} {
			b.ReportMetric(percentile(m.xs, 0.10), m.name+"-p10-ns")
			b.ReportMetric(percentile(m.xs, 0.90), m.name+"-p90-ns")
		}
		b.ReportMetric(correlation(hitNs, l3Ns), "corr-l3")
		b.ReportMetric(correlation(hitNs, dramNs), "corr-dram")
	})
}

// slotsPerMetaWord is the table's slots per 8-byte metadata word (a group).
const slotsPerMetaWord = 7

// chaseRing returns lines 64-byte lines (8 words each) linked into one
// random cycle: the first word of each holds the word offset of the next,
// so following it from 0 visits every line once per lap, each load
// waiting for the one before. Every page is written.
func chaseRing(lines int, seed uint64) []uint64 {
	ring := make([]uint64, lines*8)
	order := rand.New(rand.NewPCG(seed, 66)).Perm(lines)
	for i, line := range order {
		ring[line*8] = uint64(order[(i+1)%lines] * 8)
	}
	return ring
}

// percentile returns the q quantile of xs (nearest rank), 0 if empty.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// correlation returns Pearson's r of xs and ys (equal lengths), 0 if
// either does not vary.
func correlation(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}
