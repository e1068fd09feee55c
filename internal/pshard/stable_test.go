//go:build !race

package pshard

import (
	"runtime"
	"testing"
)

// On one P, with no collection between calls, Current is stable: the P's
// token stays in its pool. (Not under -race, where sync.Pool drops a
// quarter of what is put back, on purpose.)
func TestCurrentStableNoRace(t *testing.T) {
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
