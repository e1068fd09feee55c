// Command socksim shows what socktable is worth on a server's load: it
// runs an nginx-like scenario through socktable.Demux and, in the same run,
// through the designs other stacks use — a linear scan of every socket
// (smoltcp, early Asterinas), maps behind an RWMutex (gVisor), sync.Map and
// xsync's MapOf — and reports, per phase, segments per second, the demux
// cost at p50/p99/p99.9, allocations, memory, and the MIB counters; then
// the cost of a segment's demux as the socket count grows from 10² to 10⁶.
// It prints a report and writes a self-contained HTML page with the plots.
//
// Usage:
//
//	go run ./bench/cmd/socksim [-conns N] [-duration D] [-cores N] [-scenario NAME|FILE] [-json] [-report FILE]
//	go run ./bench/cmd/socksim replay [-json] FILE
//
// The phases of the embedded nginx scenario (scenarios/nginx.json):
//
//   - open: the server's connections arrive: SYN, final ACK, Establish and
//     accept, a first request;
//   - steady: their keep-alive traffic, in DeliverBatch rounds of 16;
//   - churn: short-lived connections the server closes first, through
//     ~100,000 TIME_WAIT entries on a simulated clock (60 s lifetimes fit
//     in seconds), mixed with keep-alive traffic;
//   - synflood: spoofed SYNs against a full SYN queue and a full accept
//     queue, mixed with keep-alive traffic;
//   - connect: the host as a client of one upstream, with 45% of its
//     ephemeral range in TIME_WAIT (at 50% and above, Linux's search —
//     even ports first, each TIME_WAIT port probed — walks every even
//     port on each connect, as socktable's does: milliseconds a connect).
//
// Every phase runs on all cores and is time-boxed per implementation, so a
// linear scan at 10⁵ sockets is sampled (the report says so). Latency is
// timed per round — a few segments and the lifecycle calls they trigger,
// timed together, since a 30–80 ns call cannot be timed alone — less the
// cost of the clock read, divided by the round's segments.
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
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	conns      int
	duration   time.Duration
	cores      int
	scenario   string
	asJSON     bool
	report     string
	maxSockets int
	impls      string
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("socksim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.conns, "conns", 0, "concurrent connections (0: the scenario's; TIME_WAIT entries scale with them)")
	fs.DurationVar(&o.duration, "duration", time.Minute, "the run's target length; every phase and scaling point gets its share as a time box")
	fs.IntVar(&o.cores, "cores", runtime.NumCPU(), "cores to run on (GOMAXPROCS and one worker goroutine each)")
	fs.StringVar(&o.scenario, "scenario", "nginx", "an embedded scenario ("+strings.Join(embeddedScenarios(), ", ")+") or a scenario JSON file")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON instead of text")
	fs.StringVar(&o.report, "report", filepath.Join(os.TempDir(), "socksim.html"), "where to write the HTML report (empty: none)")
	fs.IntVar(&o.maxSockets, "max-sockets", 0, "largest socket count of the scaling picture (0: the scenario's)")
	fs.StringVar(&o.impls, "impls", "", "comma-separated implementations to run (default: the scenario's; socktable always)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: socksim [flags]\n       socksim replay [-json] FILE\n\n"+
			"Runs a server's load (an nginx-like scenario by default, about a minute) through socktable.Demux\n"+
			"and through the designs other stacks use, and reports per phase segments/s, p50/p99/p99.9 cost,\n"+
			"allocations, memory and MIB counters, then the cost per segment from 100 to 1,000,000 sockets.\n"+
			"replay checks a packet capture against the kernel's own replies in it (socksim replay -h).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	sc, err := loadScenario(o.scenario)
	if err == nil {
		err = o.apply(sc, fs.NArg())
	}
	if err != nil {
		fmt.Fprintln(stderr, "socksim:", err)
		fs.Usage()
		return 2
	}
	prev := runtime.GOMAXPROCS(o.cores)
	defer runtime.GOMAXPROCS(prev)

	rep, err := simulate(sc, o, newProgress(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "socksim:", err)
		return 1
	}
	if o.report != "" {
		if err := os.WriteFile(o.report, []byte(reportHTML(rep)), 0o644); err != nil {
			fmt.Fprintln(stderr, "socksim:", err)
			return 1
		}
		rep.HTML = o.report
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "socksim:", err)
			return 1
		}
	} else {
		printReport(stdout, rep)
	}
	if rep.Lost > 0 {
		return 1
	}
	return 0
}

// apply checks the flags and applies them to sc.
func (o *options) apply(sc *scenario, args int) error {
	switch {
	case args > 0:
		return fmt.Errorf("no arguments expected (did you mean socksim replay FILE?)")
	case o.conns < 0:
		return fmt.Errorf("-conns must not be negative")
	case o.duration <= 0:
		return fmt.Errorf("-duration must be positive")
	case o.cores < 1:
		return fmt.Errorf("-cores must be at least 1")
	case o.maxSockets < 0:
		return fmt.Errorf("-max-sockets must not be negative")
	}
	if o.conns > 0 {
		sc.TimeWait = int(int64(sc.TimeWait) * int64(o.conns) / int64(sc.Conns))
		sc.Conns = o.conns
	}
	if o.maxSockets > 0 {
		sc.Scaling = slices.DeleteFunc(sc.Scaling, func(n int) bool { return n > o.maxSockets })
		if len(sc.Scaling) == 0 || sc.Scaling[len(sc.Scaling)-1] != o.maxSockets {
			sc.Scaling = append(sc.Scaling, o.maxSockets)
		}
	}
	if o.impls != "" {
		want := strings.Split(o.impls, ",")
		for _, impl := range want {
			if !slices.Contains(knownImpls, impl) {
				return fmt.Errorf("-impls: unknown implementation %q (%s)", impl, strings.Join(knownImpls, ", "))
			}
		}
		sc.Impls = slices.DeleteFunc(sc.Impls, func(impl string) bool {
			return impl != "socktable" && !slices.Contains(want, impl)
		})
	}
	return nil
}

// simReport is what a run found; -json prints it.
type simReport struct {
	Scenario    string        `json:"scenario"`
	Description string        `json:"description"`
	Cores       int           `json:"cores"`
	Conns       int           `json:"conns"`
	TimeWait    int           `json:"timewait_target"`
	Impls       []string      `json:"impls"`
	PhaseBox    float64       `json:"phase_time_box_sec"`
	ScaleBox    float64       `json:"scaling_time_box_sec"`
	ClockNs     float64       `json:"clock_read_ns"`
	Phases      []phaseResult `json:"phases"`
	Scaling     []scalePoint  `json:"scaling"`
	// Lost counts the connections that a check after some phase found
	// not reaching their owner (socktable's and the baselines').
	Lost    int     `json:"lost"`
	Seconds float64 `json:"seconds"`
	HTML    string  `json:"html,omitempty"`
}

// simulate runs sc's phases and scaling points for every implementation.
func simulate(sc *scenario, o options, prog *progress) (*simReport, error) {
	start := time.Now()
	rep := &simReport{Scenario: sc.Name, Description: sc.Description, Cores: o.cores, Conns: sc.Conns,
		TimeWait: sc.TimeWait, Impls: sc.Impls, ClockNs: clockCost()}
	// The time boxes: 60% of the duration for the phases, 15% for the
	// scaling points; the untimed fills take the rest.
	phaseCells := max(len(sc.Phases)*len(sc.Impls), 1)
	scaleCells := max(len(sc.Scaling)*len(sc.Impls), 1)
	phaseBox := o.duration * 60 / 100 / time.Duration(phaseCells)
	scaleBox := o.duration * 15 / 100 / time.Duration(scaleCells)
	rep.PhaseBox, rep.ScaleBox = phaseBox.Seconds(), scaleBox.Seconds()
	prog.start(phaseCells + scaleCells)

	for _, impl := range sc.Impls {
		w, err := newWorld(impl, sc, o.cores, phaseBox, rep.ClockNs)
		if err != nil {
			return nil, err
		}
		for _, p := range sc.Phases {
			prog.step(fmt.Sprintf("%s: %s", impl, p))
			r, err := w.phase(p)
			if err != nil {
				w.h.close()
				return nil, err
			}
			rep.Lost += r.Lost
			rep.Phases = append(rep.Phases, r)
		}
		w.h.close()
	}
	for _, n := range sc.Scaling {
		for _, impl := range sc.Impls {
			prog.step(fmt.Sprintf("scaling: %s, %d sockets", impl, n))
			p, err := measureScaling(impl, sc, n, o.cores, scaleBox, rep.ClockNs)
			if err != nil {
				return nil, err
			}
			rep.Lost += p.Lost
			rep.Scaling = append(rep.Scaling, p)
		}
	}
	prog.done()
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// scalePoint is the steady phase at one socket count.
type scalePoint struct {
	Impl    string `json:"impl"`
	Sockets int    `json:"sockets"`
	// NsPerSegment is the phase's wall time over its segments: all cores
	// together, the inverse of throughput.
	NsPerSegment float64 `json:"ns_per_segment"`
	// P50 and P99 are one core's cost per segment (rounds of 16).
	P50          float64 `json:"p50_ns"`
	P99          float64 `json:"p99_ns"`
	Segments     int64   `json:"segments"`
	BytesPerConn float64 `json:"heap_bytes_per_conn"`
	// Sampled: the time box ended the point (every point is boxed; this
	// marks one whose handshakes it cut too, filled untimed).
	Sampled bool `json:"sampled"`
	Lost    int  `json:"lost"`
}

// measureScaling builds impl's server with n connections and runs the
// steady phase on it.
func measureScaling(impl string, sc *scenario, n, cores int, box time.Duration, clockNs float64) (scalePoint, error) {
	small := *sc
	small.Conns, small.TimeWait, small.FloodSources = n, 0, 8
	w, err := newWorld(impl, &small, cores, box, clockNs)
	if err != nil {
		return scalePoint{}, err
	}
	defer w.h.close()
	open, err := w.open()
	if err != nil {
		return scalePoint{}, fmt.Errorf("%s, %d sockets: %w", impl, n, err)
	}
	r := w.run("steady", "segment", w.steadyRound(), nil)
	if err := r.err; err != nil {
		return scalePoint{}, fmt.Errorf("%s, %d sockets: %w", impl, n, err)
	}
	_, lost := w.check()
	return scalePoint{Impl: impl, Sockets: n, NsPerSegment: r.Seconds * 1e9 / float64(max(r.Segments, 1)),
		P50: r.P50, P99: r.P99, Segments: r.Segments, BytesPerConn: open.HeapBytesPerConn, Sampled: open.Untimed > 0, Lost: lost}, nil
}

// progress draws a bar on stderr when it is a terminal, and nothing
// otherwise (CI logs, pipes).
type progress struct {
	w     io.Writer
	on    bool
	n, of int
}

func newProgress(w io.Writer) *progress {
	on := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, on: on}
}

func (p *progress) start(of int) { p.of = of }

func (p *progress) step(what string) {
	p.n++
	if !p.on {
		return
	}
	const width = 30
	filled := width * (p.n - 1) / max(p.of, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-40s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), p.n, p.of, what)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 90))
	}
}
