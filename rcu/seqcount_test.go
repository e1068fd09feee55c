package rcu_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

func TestSeqCountReadOK(t *testing.T) {
	var s rcu.SeqCount
	e := s.BeginRead()
	require.True(t, s.ReadOK(e), "no write since BeginRead")
	s.BeginWrite()
	_, ok := s.TryBeginRead()
	require.False(t, ok, "a write is in progress")
	require.False(t, s.ReadOK(e), "a write began since BeginRead")
	s.EndWrite()
	require.False(t, s.ReadOK(e), "a write ran since BeginRead")
	e2, ok := s.TryBeginRead()
	require.True(t, ok)
	require.True(t, s.ReadOK(e2))
}

func TestSeqCountMisusePanics(t *testing.T) {
	var s rcu.SeqCount
	require.Panics(t, s.EndWrite, "EndWrite without BeginWrite")
	var s2 rcu.SeqCount
	s2.BeginWrite()
	require.Panics(t, s2.BeginWrite, "nested BeginWrite")
}

// TestSeqCountConsistentPairs has a writer keep two atomic words equal,
// changing them one at a time inside a write section; readers that pass
// ReadOK must never see them differ.
func TestSeqCountConsistentPairs(t *testing.T) {
	var s rcu.SeqCount
	var a, b atomic.Uint64
	const writes = 20000
	done := make(chan struct{})
	var torn, kept atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				e := s.BeginRead()
				x, y := a.Load(), b.Load()
				if s.ReadOK(e) {
					kept.Add(1)
					if x != y {
						torn.Add(1)
					}
				}
			}
		}()
	}
	for i := range writes {
		s.BeginWrite()
		a.Store(uint64(i))
		b.Store(uint64(i))
		s.EndWrite()
	}
	close(done)
	wg.Wait()
	assert.Zero(t, torn.Load(), "a reader kept a torn pair")
}
