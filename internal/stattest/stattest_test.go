package stattest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/stattest"
)

func TestChiSquareUniform(t *testing.T) {
	// A fair spread passes; all in one cell fails; exactly even is
	// suspiciously even and fails too.
	_, _, _, ok := stattest.ChiSquareUniform([]int{1010, 985, 1003, 990, 1012})
	require.True(t, ok)
	_, _, _, ok = stattest.ChiSquareUniform([]int{5000, 0, 0, 0, 0})
	require.False(t, ok)
	_, _, _, ok = stattest.ChiSquareUniform([]int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000})
	require.False(t, ok)
}
