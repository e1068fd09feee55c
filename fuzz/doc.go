// Package fuzz holds socktable's coverage-guided fuzz targets, one file per
// structure, each named FuzzX. Run one with
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzParse$' -fuzztime 30s
//
// Every target seeds its corpus with f.Add and checks behaviour against an
// oracle (a round trip, or a simple model), not only the absence of panics.
package fuzz
