package porctest_test

import (
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
)

// A register model: writes set it, reads return it.
var register = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		in := input.([2]int) // {0: write, 1: read; value}
		if in[0] == 0 {
			return true, in[1]
		}
		return output.(int) == state.(int), state
	},
}

func TestRecorderHistory(t *testing.T) {
	r := porctest.NewRecorder(2)
	c := r.Call()
	r.Return(0, c, [2]int{0, 5}, 0)
	c = r.Call()
	r.Return(1, c, [2]int{1, 0}, 5)
	h := r.History()
	require.Len(t, h, 2)
	require.Less(t, h[0].Return, h[1].Call, "the logical clock orders the two")
	require.True(t, porcupine.CheckOperations(register, h))
	// A stale read after a completed write is caught.
	h[1].Output = 0
	require.False(t, porcupine.CheckOperations(register, h))
}

func TestRandDeterministic(t *testing.T) {
	a, b := porctest.NewRand(7), porctest.NewRand(7)
	for range 100 {
		require.Equal(t, a.Next(), b.Next())
	}
	z := porctest.NewRand(0)
	require.NotZero(t, z.Next(), "a zero seed still generates")
	for range 1000 {
		require.Less(t, z.IntN(3), 3)
	}
}
