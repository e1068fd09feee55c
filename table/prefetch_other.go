//go:build (!amd64 && !arm64) || purego

package table

// prefetch is a no-op where the package has no assembly for it:
// LookupBatch then works as a loop of lookups.
func prefetch(addrs *uintptr, n int) {}
