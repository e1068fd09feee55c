//go:build !linux

package table

import "unsafe"

// populate does nothing here: the pages fault in on first use.
func populate(p unsafe.Pointer, size uintptr) {}

// adviseHuge does nothing here.
func adviseHuge(p unsafe.Pointer, size uintptr) {}
