package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// phaseTitles say what each phase is, for the report's readers.
var phaseTitles = map[string]string{
	"open":     "connections arrive: SYN, final ACK, establish + accept, first request",
	"steady":   "keep-alive traffic to the established connections, DeliverBatch rounds of 16",
	"churn":    "short-lived connections closed by the server, through TIME_WAIT on a simulated clock, amid keep-alive traffic",
	"synflood": "spoofed SYNs against a full SYN queue (*:443) and a full accept queue (*:8080), amid keep-alive traffic",
	"connect":  "the host connects to one upstream with its ephemeral range under pressure, and closes first",
}

// printReport writes the report for a person.
func printReport(w io.Writer, rep *simReport) {
	fmt.Fprintf(w, "socksim: scenario %s, %d cores, %d connections\n", rep.Scenario, rep.Cores, rep.Conns)
	fmt.Fprintf(w, "%s\n\n", wrap(rep.Description, 100))
	fmt.Fprintf(w, "Each phase runs on all cores, time-boxed at %.1fs per implementation. Latency is per segment: rounds of\n"+
		"3-16 segments and the lifecycle calls they trigger, timed together, less the clock read (%.0f ns), over\n"+
		"their segments. allocs/seg counts every allocation in the timed rounds.\n", rep.PhaseBox, rep.ClockNs)
	for _, phase := range phasesOf(rep) {
		fmt.Fprintf(w, "\n%s: %s\n", phase, phaseTitles[phase])
		fmt.Fprintf(w, "  %-10s %10s %9s %9s %9s %10s %9s  %s\n", "impl", "seg/s", "p50", "p99", "p99.9", "allocs/seg", "B/conn", "")
		var st *phaseResult
		for i := range rep.Phases {
			r := &rep.Phases[i]
			if r.Phase != phase {
				continue
			}
			if r.Impl == "socktable" {
				st = r
			}
			notes := r.Notes
			if r.Unit != "segment" {
				notes = append([]string{"latency per " + r.Unit}, notes...)
			}
			bpc := "-"
			if r.HeapBytesPerConn > 0 {
				bpc = fmt.Sprintf("%.0f", r.HeapBytesPerConn)
			}
			fmt.Fprintf(w, "  %-10s %10s %9s %9s %9s %10.2f %9s  %s\n", r.Impl, formatRate(r.SegmentsPerSec),
				formatNs(r.P50), formatNs(r.P99), formatNs(r.P999), r.AllocsPerSegment, bpc, strings.Join(notes, "; "))
		}
		if st != nil {
			printPhaseFacts(w, rep, st)
		}
	}
	if len(rep.Scaling) > 0 {
		printScaling(w, rep)
	}
	printSummary(w, rep)
	fmt.Fprintf(w, "\nlost connections: %d (every established connection sent a segment after each phase; a linear scan: a sample)\n", rep.Lost)
	fmt.Fprintf(w, "ran in %.0fs\n", rep.Seconds)
	if rep.HTML != "" {
		fmt.Fprintf(w, "\nreport: %s\n", rep.HTML)
	}
}

// printPhaseFacts writes what socktable's run of a phase counted, and how
// the tables ended it for every implementation.
func printPhaseFacts(w io.Writer, rep *simReport, st *phaseResult) {
	fmt.Fprintf(w, "  socktable: %d segments (%s), %d opened, %d closed\n", st.Segments, outcomesText(st.Outcomes), st.Opened, st.Closed)
	if c := st.Counters; c != nil {
		fmt.Fprintf(w, "  accept-queue overflows %d, TIME_WAIT overflows %d, port-pick failures %d\n",
			c.ListenOverflows, c.TCPTimeWaitOverflow, st.ConnectFailures)
		fmt.Fprintf(w, "  MIB counters: %s\n", countersText(st))
	}
	var tables []string
	for i := range rep.Phases {
		if r := &rep.Phases[i]; r.Phase == st.Phase {
			tables = append(tables, fmt.Sprintf("%s %d/%d", r.Impl, r.Census.Entries, r.Census.TimeWaits))
		}
	}
	fmt.Fprintf(w, "  tables after (established+requests / TIME_WAIT): %s\n", strings.Join(tables, ", "))
}

func outcomesText(m map[string]int64) string {
	var parts []string
	for _, k := range []string{"to-conn", "completed", "send", "dropped"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// printScaling writes ns per segment, one row per socket count.
func printScaling(w io.Writer, rep *simReport) {
	sizes := scalingSizes(rep)
	fmt.Fprintf(w, "\nscaling: ns per segment (all %d cores together), keep-alive traffic, %.2fs per point; lower is better\n\n", rep.Cores, rep.ScaleBox)
	fmt.Fprintf(w, "  %10s", "sockets")
	for _, impl := range rep.Impls {
		fmt.Fprintf(w, " %11s", impl)
	}
	fmt.Fprintln(w)
	for _, n := range sizes {
		fmt.Fprintf(w, "  %10d", n)
		for _, impl := range rep.Impls {
			fmt.Fprintf(w, " %11s", formatNs(scalingCost(rep, impl, n)))
		}
		fmt.Fprintln(w)
	}
	last := sizes[len(sizes)-1]
	st := scalingCost(rep, "socktable", last)
	if len(rep.Impls) > 1 {
		fmt.Fprintf(w, "\n  at %d sockets socktable is", last)
		for _, impl := range rep.Impls[1:] {
			fmt.Fprintf(w, " %.1fx (%s)", scalingCost(rep, impl, last)/st, impl)
		}
		fmt.Fprintln(w, " faster")
	}
}

func phasesOf(rep *simReport) []string {
	var out []string
	for _, r := range rep.Phases {
		if !slices.Contains(out, r.Phase) {
			out = append(out, r.Phase)
		}
	}
	return out
}

func scalingSizes(rep *simReport) []int {
	var out []int
	for _, p := range rep.Scaling {
		if len(out) == 0 || out[len(out)-1] != p.Sockets {
			out = append(out, p.Sockets)
		}
	}
	return out
}

func scalingCost(rep *simReport, impl string, n int) float64 {
	for _, p := range rep.Scaling {
		if p.Impl == impl && p.Sockets == n {
			return p.NsPerSegment
		}
	}
	return math.NaN()
}

func formatNs(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "-"
	case ns >= 1e9:
		return fmt.Sprintf("%.1fs", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.1fms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1fµs", ns/1e3)
	default:
		return fmt.Sprintf("%.0fns", ns)
	}
}

func formatRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

// wrap breaks s into lines of at most width runes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if line+1+len([]rune(word)) > width {
				b.WriteByte('\n')
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len([]rune(word))
	}
	return b.String()
}

// countersText lists r's MIB counters that moved.
func countersText(r *phaseResult) string {
	c := r.Counters
	var parts []string
	for _, kv := range []struct {
		name string
		v    uint64
	}{
		{"ListenOverflows", c.ListenOverflows}, {"ListenDrops", c.ListenDrops}, {"TCPReqQFullDoCookies", c.TCPReqQFullDoCookies},
		{"TCPReqQFullDrop", c.TCPReqQFullDrop}, {"SyncookiesSent", c.SyncookiesSent}, {"TCPTimeWaitOverflow", c.TCPTimeWaitOverflow},
		{"TW", c.TW}, {"TWKilled", c.TWKilled}, {"TWRecycled", c.TWRecycled}, {"EmbryonicRsts", c.EmbryonicRsts},
	} {
		if kv.v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kv.name, kv.v))
		}
	}
	if len(parts) == 0 {
		return "none of the overflow, cookie or TIME_WAIT counters moved"
	}
	return strings.Join(parts, ", ")
}

// summaryLines compare socktable with the best baseline of each phase
// (by segments/s) and at the largest socket count.
func summaryLines(rep *simReport) []string {
	var lines []string
	for _, phase := range phasesOf(rep) {
		var st, best *phaseResult
		for i := range rep.Phases {
			r := &rep.Phases[i]
			switch {
			case r.Phase != phase:
			case r.Impl == "socktable":
				st = r
			case best == nil || r.SegmentsPerSec > best.SegmentsPerSec:
				best = r
			}
		}
		if st == nil || best == nil || best.SegmentsPerSec == 0 || best.P99 == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-9s socktable %s seg/s, %.2fx the best baseline (%s %s); p99 %s against %s",
			phase+":", formatRate(st.SegmentsPerSec), st.SegmentsPerSec/best.SegmentsPerSec, best.Impl,
			formatRate(best.SegmentsPerSec), formatNs(st.P99), formatNs(best.P99)))
	}
	if sizes := scalingSizes(rep); len(sizes) > 0 && len(rep.Impls) > 1 {
		last := sizes[len(sizes)-1]
		st := scalingCost(rep, "socktable", last)
		var parts []string
		for _, impl := range rep.Impls[1:] {
			parts = append(parts, fmt.Sprintf("%.1fx %s", scalingCost(rep, impl, last)/st, impl))
		}
		lines = append(lines, fmt.Sprintf("%-9s at %d sockets socktable takes %s a segment, faster by %s", "scaling:", last,
			formatNs(st), strings.Join(parts, ", ")))
	}
	return lines
}

func printSummary(w io.Writer, rep *simReport) {
	lines := summaryLines(rep)
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nsummary\n")
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}
