package pshard

import (
	"sync"
	"testing"
)

// Concurrent callers get numbers in range.
func TestCurrentConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if id := Current(); id >= Max {
					t.Errorf("Current() = %d", id)
					return
				}
			}
		}()
	}
	wg.Wait()
}
