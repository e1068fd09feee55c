package pshard

import (
	"runtime"
	"sync"
	"testing"
)

// Current stays in range and, on one P with no collection between calls,
// is stable.
func TestCurrent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	a := Current()
	if a >= Max {
		t.Fatalf("Current() = %d, want < %d", a, Max)
	}
	for range 1000 {
		if b := Current(); b != a {
			t.Fatalf("Current() changed on one P: %d then %d", a, b)
		}
	}
}

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
