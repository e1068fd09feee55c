//go:build race

package table_test

// raceEnabled shrinks the largest tests under the race detector, which
// makes every memory access several times slower.
const raceEnabled = true
