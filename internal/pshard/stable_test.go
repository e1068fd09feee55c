//go:build !race

package pshard

import (
	"runtime"
	"testing"
)

// On one P, Current is stable, garbage collections included: it is the
// P's own id.
func TestCurrentStableNoRace(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	a := Current()
	if a >= Max {
		t.Fatalf("Current() = %d, want < %d", a, Max)
	}
	for i := range 1000 {
		if i%100 == 0 {
			runtime.GC()
		}
		if b := Current(); b != a {
			t.Fatalf("Current() changed on one P: %d then %d", a, b)
		}
	}
}
