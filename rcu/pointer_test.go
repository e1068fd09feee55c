package rcu_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

type config struct{ version, a, b int }

func TestPointerPublishSwapCompare(t *testing.T) {
	var p rcu.Pointer[config]
	require.Nil(t, p.Load(), "the zero Pointer holds nil")
	v1 := &config{version: 1}
	p.Publish(v1)
	require.Same(t, v1, p.Load())
	v2 := &config{version: 2}
	require.False(t, p.CompareAndPublish(v2, v2), "old does not match")
	require.True(t, p.CompareAndPublish(v1, v2))
	require.Same(t, v2, p.Swap(v1))
	require.Same(t, v1, p.Load())
	require.Same(t, v1, p.Update(func(old *config) *config { return old }), "returning old publishes nothing")
}

// TestPointerUpdateLosesNoUpdate runs racing copy-update writers; every
// increment must land, and readers must only ever see consistent versions
// (a == b == version), never a half-built copy.
func TestPointerUpdateLosesNoUpdate(t *testing.T) {
	var p rcu.Pointer[config]
	p.Publish(&config{})
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := p.Load()
			if c.a != c.version || c.b != c.version {
				t.Errorf("reader saw an inconsistent version %+v", *c)
				return
			}
		}
	}()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				p.Update(func(old *config) *config {
					n := *old
					n.version++
					n.a, n.b = n.version, n.version
					return &n
				})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	require.Equal(t, writers*each, p.Load().version)
}
