//go:build !race

package rcu_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

func TestSeqCountAllocateNothing(t *testing.T) {
	var s rcu.SeqCount
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		e := s.BeginRead()
		_ = s.ReadOK(e)
		s.BeginWrite()
		s.EndWrite()
	}))
}
