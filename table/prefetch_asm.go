//go:build (amd64 || arm64) && !purego

package table

// prefetch asks the CPU to bring the cache lines at addrs[0:n] into the
// L1 cache without waiting for them (PREFETCHT0 on amd64, PRFM PLDL1KEEP
// on arm64). A plain load of each line would do the same but hold up the
// core's reorder buffer until it arrived, so only a handful of misses
// would overlap; prefetches retire at once. It reads no memory as far as
// Go is concerned: the addresses need not stay valid.
//
//go:noescape
func prefetch(addrs *uintptr, n int)
