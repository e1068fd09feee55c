//go:build linux

package table

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// residentPages returns how many of the pages of b (page-aligned) are
// resident, by mincore(2).
func residentPages(t *testing.T, b []byte) int {
	vec := make([]byte, (len(b)+4095)/4096)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	require.Zero(t, errno)
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestPopulateFaultsPagesIn checks, on fresh anonymous memory (no page
// resident), that populate faults in every whole page of an unaligned
// range and nothing around it, and leaves the contents alone.
func TestPopulateFaultsPagesIn(t *testing.T) {
	const page, pages = 4096, 64
	mem, err := syscall.Mmap(-1, 0, pages*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	defer syscall.Munmap(mem)
	require.Zero(t, residentPages(t, mem), "fresh memory is resident already")
	mem[30*page+5] = 42 // one page in the range written already: populate keeps it

	// From 100 bytes into page 1 to 100 bytes into page 60: pages 2..59
	// are whole.
	lo, hi := page+100, 60*page+100
	populate(unsafe.Pointer(&mem[lo]), uintptr(hi-lo))
	require.Equal(t, 58, residentPages(t, mem[2*page:60*page]), "whole pages left out")
	require.Equal(t, 58, residentPages(t, mem), "pages outside the range faulted in")

	// Ranges without a whole page do nothing.
	populate(unsafe.Pointer(&mem[lo]), 0)
	populate(unsafe.Pointer(&mem[61*page+1]), page)
	require.Equal(t, 58, residentPages(t, mem))

	require.Equal(t, byte(42), mem[30*page+5], "contents changed")
	mem[30*page+5] = 0
	for _, b := range mem[2*page : 60*page] { // (reading the others would fault them in)
		require.Zero(t, b, "contents changed")
	}
}

// TestAdviseHugeLeavesMemoryAlone checks that adviseHuge faults nothing
// in and keeps contents, on ranges with and without a whole 2 MiB page.
func TestAdviseHugeLeavesMemoryAlone(t *testing.T) {
	const size = 8 << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	defer syscall.Munmap(mem)
	adviseHuge(unsafe.Pointer(&mem[100]), size-200)
	adviseHuge(unsafe.Pointer(&mem[100]), 4096)
	require.Zero(t, residentPages(t, mem), "advice faulted pages in")
	mem[size/2] = 9
	adviseHuge(unsafe.Pointer(&mem[0]), size)
	require.Equal(t, byte(9), mem[size/2])
}
