//go:build linux

package table

import (
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14).
const madvPopulateWrite = 23

// populate faults in, writable, the whole pages within the size bytes at
// p, as a write to each would, in one system call. On kernels without
// MADV_POPULATE_WRITE it does nothing: the pages then fault in on first
// use, as they would have anyway.
func populate(p unsafe.Pointer, size uintptr) {
	const page = 4096
	skip := -uintptr(p) & (page - 1) // to the first page boundary
	if size <= skip+page {
		return
	}
	n := (size - skip) &^ (page - 1)
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), n), madvPopulateWrite)
}

// adviseHuge asks for transparent huge pages on the whole 2 MiB pages
// within the size bytes at p (MADV_HUGEPAGE).
func adviseHuge(p unsafe.Pointer, size uintptr) {
	const huge = 2 << 20
	skip := -uintptr(p) & (huge - 1)
	if size <= skip+huge {
		return
	}
	n := (size - skip) &^ (huge - 1)
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), n), syscall.MADV_HUGEPAGE)
}
