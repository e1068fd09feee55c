// Package bench holds socktable's comparative benchmarks: every structure
// against the baselines a Go stack would otherwise use (an unlocked Go map
// as the read-only floor, a map behind sync.RWMutex, sync.Map, xsync v3
// MapOf and xsync v4 Map), with sub-benchmarks named impl=NAME so that
// benchstat compares them:
//
//	go test ./bench -run '^$' -bench . -cpu 1,2 -count 6 > new.txt
//	benchstat -col /impl new.txt
//
// SOCKTABLE_BENCH_SHORT=1 shrinks the large tables (CI runs every
// benchmark once that way, so none rots). BENCHMARKS.md at the repository
// root keeps the command and the latest table.
package bench
