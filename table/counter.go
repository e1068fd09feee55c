package table

import (
	"runtime"
	"sync/atomic"

	"github.com/socktable/socktable/internal/pshard"
)

// counters counts a table's live entries and used slots (live or
// deleted) in stripes, each on a cache line of its own. A writer adds to
// the stripe of the P it runs on (pshard.Current), so writers on
// different cores do not pull each other's lines: with stripes chosen by
// group, two cores writing random groups found the line in the other
// core's cache on half of their writes, and that transfer was most of a
// delete's cost at 2 cores.
//
// Each stripe packs live (low 32 bits) and used (high 32 bits) into one
// word, so a write updates both with one atomic add. An entry may be
// counted in one stripe and uncounted in another, so a stripe's halves
// can wrap below zero; sums are taken over whole words, modulo 2^64, and
// split afterwards, which is exact because the true totals are in range.
type counters struct {
	stripes []counter // immutable header; length a power of two
	mask    uint32    // immutable; len(stripes)-1
}

type counter struct {
	v atomic.Uint64
	_ [56]byte
}

const (
	usedOne = 1 << 32
	// maxStripes bounds the stripes: one per P up to 64 Ps, beyond which
	// Ps share them.
	maxStripes = pshard.Max
)

func newCounters() counters {
	n := 1
	for n < min(runtime.GOMAXPROCS(0), maxStripes) {
		n *= 2
	}
	return counters{stripes: make([]counter, n), mask: uint32(n - 1)}
}

// add adds delta (live in the low half, used in the high half; negative
// deltas wrap) to the stripe of the caller's P.
func (c *counters) add(delta uint64) {
	c.stripes[pshard.Current()&c.mask].v.Add(delta)
}

// sum returns the packed totals. Exact when no write runs; under writes,
// each stripe is read at a different moment.
func (c *counters) sum() uint64 {
	var s uint64
	for i := range c.stripes {
		s += c.stripes[i].v.Load()
	}
	return s
}

// live returns the live half of the totals. It may be negative: a
// migration's target table counts the entries it receives as used but
// not live (they were counted live in the table they came from), so
// deletes of moved entries take its live total below zero. The low half
// is read as a signed 32-bit number, and used is what remains.
func (c *counters) live() int { return splitLive(c.sum()) }
func (c *counters) used() int { return splitUsed(c.sum()) }

func splitLive(s uint64) int { return int(int32(uint32(s))) }
func splitUsed(s uint64) int { return int((s - uint64(int64(splitLive(s)))) >> 32) }
