// Command socksim shows the problem socktable solves: what it costs to find
// the owner of an arriving segment as the number of sockets grows from 10²
// to 10⁶, for socktable and for the designs other stacks use — a linear
// scan of every socket (smoltcp, early Asterinas), a map behind a RWMutex
// (gVisor), sync.Map and xsync.MapOf.
//
// At each size, half the sockets stay open and the other half churn like
// TIME_WAIT connections: one goroutine removes and re-adds them for the
// whole measurement, while a lookup goroutine per core asks for owners of
// random sockets. It prints a table (ns per lookup, all cores together)
// and writes a self-contained HTML page with a log-log plot.
//
// Usage:
//
//	go run ./bench/cmd/socksim [-max-sockets N] [-duration D] [-json] [-out FILE]
//	go run ./bench/cmd/socksim replay [-json] FILE
//
// replay runs a real packet capture through socktable.Demux and checks
// each segment's verdict against the reply the kernel sent in the capture
// (see replay.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socktable/socktable/tuple"
)

// result is one measurement: one design at one socket count.
type result struct {
	Design      string  `json:"design"`
	Sockets     int     `json:"sockets"`
	Lookups     int64   `json:"lookups"`
	NsPerLookup float64 `json:"ns_per_lookup"`
}

// report is what -json prints.
type report struct {
	GOMAXPROCS int      `json:"gomaxprocs"`
	Duration   string   `json:"duration_per_point"`
	Results    []result `json:"results"`
	HTML       string   `json:"html,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("socksim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxSockets := fs.Int("max-sockets", 1_000_000, "largest socket count (counts go up by powers of ten from 100)")
	duration := fs.Duration("duration", 300*time.Millisecond, "measuring time per design and socket count")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	out := fs.String("out", filepath.Join(os.TempDir(), "socksim.html"), "where to write the HTML plot (empty: none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: socksim [flags]\n\n"+
			"Measures the cost of finding a segment's owner as sockets grow from 100 to -max-sockets,\n"+
			"half of them churning, for socktable and the designs other stacks use.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *maxSockets < 2 || *duration <= 0 {
		fmt.Fprintln(stderr, "socksim: -max-sockets must be at least 2, -duration positive, and no arguments")
		fs.Usage()
		return 2
	}

	sizes := socketCounts(*maxSockets)
	progress := newProgress(stderr, len(sizes)*len(designs))
	hasher := tuple.NewHasher()
	var results []result
	for _, n := range sizes {
		for _, d := range designs {
			progress.step(fmt.Sprintf("%s, %d sockets", d, n))
			results = append(results, measure(d, n, *duration, hasher))
		}
	}
	progress.done()

	rep := report{GOMAXPROCS: runtime.GOMAXPROCS(0), Duration: duration.String(), Results: results}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(plotHTML(rep, sizes)), 0o644); err != nil {
			fmt.Fprintln(stderr, "socksim:", err)
			return 1
		}
		rep.HTML = *out
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "socksim:", err)
			return 1
		}
		return 0
	}
	printTable(stdout, rep, sizes)
	if *out != "" {
		fmt.Fprintf(stdout, "\nplot: %s\n", *out)
	}
	return 0
}

// socketCounts returns 100, 1000, ... up to max, and max itself.
func socketCounts(max int) []int {
	var out []int
	for n := 100; n < max; n *= 10 {
		out = append(out, n)
	}
	return append(out, max)
}

// flow returns the i-th connection of a server: one listener, clients
// spread over a /8 and their ports.
func flow(i int) tuple.Tuple {
	return tuple.Tuple{
		Local: tuple.MustEndpoint("192.0.2.1:443"),
		Remote: tuple.Endpoint{
			Addr: tuple.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			Port: uint16(1024 + i>>24),
		},
	}
}

// measure fills design d with n sockets, then for the given duration churns
// half of them on one goroutine while GOMAXPROCS goroutines look up owners
// of random sockets (stable and churning alike).
func measure(d string, n int, duration time.Duration, h *tuple.Hasher) result {
	keys := make([]tuple.Tuple, n)
	o := newDesign(d, n, h)
	for i := range keys {
		keys[i] = flow(i)
		o.insert(keys[i], &sock{id: i})
	}
	stable := max(n/2, 1)

	var stop atomic.Bool
	var lookups atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // TIME_WAIT-like churn: the second half closes and reopens
		defer wg.Done()
		for j := stable; !stop.Load(); j++ {
			if j == n {
				j = stable
				if stable == n {
					runtime.Gosched()
					continue
				}
			}
			o.remove(keys[j])
			o.insert(keys[j], &sock{id: j})
		}
	}()
	workers := runtime.GOMAXPROCS(0)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(w)*0x9e3779b97f4a7c15 | 1
			var count int64
			for !stop.Load() {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				o.lookup(keys[x%uint64(n)])
				count++
			}
			lookups.Add(count)
		}()
	}
	time.Sleep(duration) // the measuring window itself, not a wait for concurrency
	stop.Store(true)
	elapsed := time.Since(start)
	wg.Wait()
	total := max(lookups.Load(), 1)
	return result{Design: d, Sockets: n, Lookups: total, NsPerLookup: float64(elapsed.Nanoseconds()) / float64(total)}
}

// printTable writes ns per lookup, one row per socket count.
func printTable(w io.Writer, rep report, sizes []int) {
	fmt.Fprintf(w, "ns per lookup (all %d cores together; half the sockets churning), lower is better\n\n", rep.GOMAXPROCS)
	fmt.Fprintf(w, "%10s", "sockets")
	for _, d := range designs {
		fmt.Fprintf(w, " %11s", d)
	}
	fmt.Fprintln(w)
	for _, n := range sizes {
		fmt.Fprintf(w, "%10d", n)
		for _, d := range designs {
			fmt.Fprintf(w, " %11s", formatNs(lookupCost(rep.Results, d, n)))
		}
		fmt.Fprintln(w)
	}
	last := sizes[len(sizes)-1]
	st := lookupCost(rep.Results, "socktable", last)
	fmt.Fprintf(w, "\nat %d sockets socktable is", last)
	for _, d := range designs[1:] {
		fmt.Fprintf(w, " %.1fx (%s)", lookupCost(rep.Results, d, last)/st, d)
	}
	fmt.Fprintln(w, " faster")
}

func lookupCost(rs []result, d string, n int) float64 {
	for _, r := range rs {
		if r.Design == d && r.Sockets == n {
			return r.NsPerLookup
		}
	}
	return math.NaN()
}

func formatNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.1fms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1fµs", ns/1e3)
	default:
		return fmt.Sprintf("%.0fns", ns)
	}
}

// progress draws a bar on stderr when it is a terminal, and nothing
// otherwise (CI logs, pipes).
type progress struct {
	w     io.Writer
	on    bool
	n, of int
}

func newProgress(w io.Writer, of int) *progress {
	f, ok := w.(*os.File)
	on := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, on: on, of: of}
}

func (p *progress) step(what string) {
	p.n++
	if !p.on {
		return
	}
	const width = 30
	filled := width * (p.n - 1) / p.of
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-32s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), p.n, p.of, what)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 80))
	}
}
