//go:build !unix

package bench

import "time"

// cpuTime is not measured on this platform: benchmarks that report CPU
// time per op report 0.
func cpuTime() time.Duration { return 0 }
