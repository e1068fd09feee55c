package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

var colors = map[string]string{
	"socktable": "#d62728", "linear": "#7f7f7f", "rwmutex": "#1f77b4", "syncmap": "#2ca02c", "xsync": "#9467bd",
}

// reportHTML renders the report as one self-contained page (no scripts,
// no external files): the scaling plot (sockets against ns per segment,
// log-log), a latency plot per phase (p50, p99 and p99.9 of each
// implementation, log scale) and the phase tables. Elements carry classes
// and data attributes (plot-box, series, point, phase-table) that the
// browser test reads.
func reportHTML(rep *simReport) string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><meta charset=\"utf-8\"><title>socksim: " + html.EscapeString(rep.Scenario) + "</title>" +
		"<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}" +
		"table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #ddd}" +
		"td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:90%}svg{display:block;margin:1em 0}" +
		".phases{display:flex;flex-wrap:wrap;gap:0 24px}</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>socksim: what finding a segment's owner costs</h1>\n<p>Scenario <b>%s</b> on %d cores, %d connections: %s.</p>\n",
		html.EscapeString(rep.Scenario), rep.Cores, rep.Conns, html.EscapeString(rep.Description))
	fmt.Fprintf(&b, "<p class=\"note\">socktable is <span style=\"color:%s\">red</span>; the baselines are the same demux over a linear scan "+
		"(smoltcp), maps behind an RWMutex (gVisor), sync.Map and xsync.MapOf. Every phase runs on all cores, time-boxed at %.1fs per "+
		"implementation (a linear scan is sampled). Latency is per segment: rounds of 3–16 segments and the lifecycle calls they "+
		"trigger, timed together, less the clock read (%.0f ns), over their segments. Lower is better.</p>\n",
		colors["socktable"], rep.PhaseBox, rep.ClockNs)
	if lines := summaryLines(rep); len(lines) > 0 {
		b.WriteString("<h2>Summary</h2>\n<ul class=\"summary\">\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "<li>%s</li>\n", html.EscapeString(l))
		}
		b.WriteString("</ul>\n")
	}
	if len(rep.Scaling) > 0 {
		b.WriteString("<h2>Cost per segment as sockets grow</h2>\n")
		fmt.Fprintf(&b, "<p class=\"note\">Keep-alive traffic on all %d cores; ns per segment is wall time over segments, all cores together; %.2fs per point.</p>\n",
			rep.Cores, rep.ScaleBox)
		scalingSVG(&b, rep)
		scalingTable(&b, rep)
	}
	b.WriteString("<h2>Phases: latency per segment</h2>\n<div class=\"phases\">\n")
	for _, phase := range phasesOf(rep) {
		latencySVG(&b, rep, phase)
	}
	b.WriteString("</div>\n")
	for _, phase := range phasesOf(rep) {
		phaseTable(&b, rep, phase)
	}
	fmt.Fprintf(&b, "<p class=\"note\">Lost connections: %d. Ran in %.0fs.</p>\n</body></html>\n", rep.Lost, rep.Seconds)
	return b.String()
}

// chart maps values onto a plot box with log axes.
type chart struct {
	w, h, left, right, top, bottom float64
	xMin, xMax, yMin, yMax         float64 // decades
}

func (c *chart) px(x float64) float64 {
	return c.left + (math.Log10(x)-c.xMin)/(c.xMax-c.xMin)*(c.w-c.left-c.right)
}

func (c *chart) py(y float64) float64 {
	return c.top + (1-(math.Log10(y)-c.yMin)/(c.yMax-c.yMin))*(c.h-c.top-c.bottom)
}

// decades returns the whole decades around the finite positive values.
func decades(vals []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	a, z := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if z == a {
		z++
	}
	return a, z
}

func (c *chart) open(b *strings.Builder, id string) {
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" width=\"%.0f\" height=\"%.0f\" font-size=\"12\">\n", id, c.w, c.h)
	fmt.Fprintf(b, "<rect class=\"plot-box\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#bbb\"/>\n",
		c.left, c.top, c.w-c.left-c.right, c.h-c.top-c.bottom)
	for e := c.yMin; e <= c.yMax; e++ {
		y := c.py(math.Pow(10, e))
		fmt.Fprintf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"+
			"<text class=\"y-tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			c.left, c.w-c.right, y, y, c.left-6, y+4, tickNs(e))
	}
}

func scalingSVG(b *strings.Builder, rep *simReport) {
	sizes := scalingSizes(rep)
	var costs []float64
	for _, p := range rep.Scaling {
		costs = append(costs, p.NsPerSegment)
	}
	c := &chart{w: 820, h: 440, left: 70, right: 150, top: 20, bottom: 50}
	c.yMin, c.yMax = decades(costs)
	c.xMin, c.xMax = math.Log10(float64(sizes[0])), math.Log10(float64(sizes[len(sizes)-1]))
	if c.xMax == c.xMin {
		c.xMax++
	}
	c.open(b, "scaling")
	for _, n := range sizes {
		x := c.px(float64(n))
		fmt.Fprintf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"+
			"<text class=\"x-tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			x, x, c.top, c.h-c.bottom, x, c.h-c.bottom+16, sockets(n))
	}
	fmt.Fprintf(b, "<text class=\"x-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">sockets</text>\n", (c.left+c.w-c.right)/2, c.h-12)
	fmt.Fprintf(b, "<text class=\"y-label\" transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">ns per segment</text>\n", (c.top+c.h-c.bottom)/2)
	for i, impl := range rep.Impls {
		var pts []string
		var dots strings.Builder
		for _, n := range sizes {
			v := scalingCost(rep, impl, n)
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			x, y := c.px(float64(n)), c.py(v)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			fmt.Fprintf(&dots, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s, %d sockets: %s</title></circle>\n",
				x, y, colors[impl], impl, n, formatNs(v))
		}
		fmt.Fprintf(b, "<g class=\"series\" data-impl=\"%s\"><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n%s</g>\n",
			impl, colors[impl], strings.Join(pts, " "), dots.String())
		ly := c.top + 14 + 20*float64(i)
		fmt.Fprintf(b, "<g class=\"legend\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\">%s</text></g>\n",
			c.w-c.right+15, c.w-c.right+40, ly, ly, colors[impl], c.w-c.right+46, ly+4, impl)
	}
	b.WriteString("</svg>\n")
}

// sockets labels a socket count: a power of ten as 10², 10³, …
func sockets(n int) string {
	if e := math.Log10(float64(n)); e == math.Trunc(e) && n >= 100 && e < 10 {
		return "10" + superscript(int(e))
	}
	return fmt.Sprint(n)
}

func superscript(d int) string { return string([]rune("⁰¹²³⁴⁵⁶⁷⁸⁹")[d]) }

// tickNs labels the decade 10^e ns: 1ns, 10ns, …, 1µs, …, 1s, 10s.
func tickNs(e float64) string {
	units := []string{"ns", "µs", "ms", "s"}
	k := min(int(e)/3, len(units)-1)
	if e < 0 {
		return formatNs(math.Pow(10, e))
	}
	return fmt.Sprintf("%.0f%s", math.Pow(10, e-float64(3*k)), units[k])
}

func scalingTable(b *strings.Builder, rep *simReport) {
	b.WriteString("<table class=\"scaling-table\"><tr><th>sockets</th>")
	for _, impl := range rep.Impls {
		fmt.Fprintf(b, "<th>%s</th>", impl)
	}
	b.WriteString("</tr>\n")
	for _, n := range scalingSizes(rep) {
		fmt.Fprintf(b, "<tr><td>%d</td>", n)
		for _, impl := range rep.Impls {
			fmt.Fprintf(b, "<td>%s</td>", formatNs(scalingCost(rep, impl, n)))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
}

// latencySVG draws one phase: per implementation, its p50, p99 and p99.9
// on a log axis, joined by a line.
func latencySVG(b *strings.Builder, rep *simReport, phase string) {
	var rs []*phaseResult
	var vals []float64
	for i := range rep.Phases {
		if r := &rep.Phases[i]; r.Phase == phase {
			rs = append(rs, r)
			vals = append(vals, r.P50, r.P99, r.P999)
		}
	}
	c := &chart{w: 400, h: 270, left: 56, right: 10, top: 28, bottom: 40}
	c.yMin, c.yMax = decades(vals)
	c.open(b, "latency-"+phase)
	unit := "segment"
	if len(rs) > 0 {
		unit = rs[0].Unit
	}
	fmt.Fprintf(b, "<text class=\"title\" x=\"%.1f\" y=\"16\" font-weight=\"bold\">%s <tspan font-weight=\"normal\">(per %s: p50 ● p99 ◆ p99.9 ▲)</tspan></text>\n",
		c.left, phase, unit)
	slot := (c.w - c.left - c.right) / float64(max(len(rs), 1))
	for i, r := range rs {
		x := c.left + slot*(float64(i)+0.5)
		fmt.Fprintf(b, "<text class=\"x-tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, c.h-c.bottom+16, r.Impl)
		var marks strings.Builder
		lo, hi := math.Inf(1), math.Inf(-1)
		for k, q := range []struct {
			name string
			v    float64
		}{{"p50", r.P50}, {"p99", r.P99}, {"p99.9", r.P999}} {
			if math.IsNaN(q.v) || q.v <= 0 {
				continue
			}
			y := c.py(q.v)
			lo, hi = math.Min(lo, y), math.Max(hi, y)
			fmt.Fprintf(&marks, "<path class=\"point\" data-q=\"%s\" d=\"%s\" fill=\"%s\"><title>%s %s: %s</title></path>\n",
				q.name, marker(k, x, y), colors[r.Impl], r.Impl, q.name, formatNs(q.v))
		}
		fmt.Fprintf(b, "<g class=\"series\" data-impl=\"%s\">", r.Impl)
		if !math.IsInf(lo, 1) {
			fmt.Fprintf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", x, x, lo, hi, colors[r.Impl])
		}
		b.WriteString(marks.String() + "</g>\n")
	}
	b.WriteString("</svg>\n")
}

// marker is the path of a circle (p50), diamond (p99) or triangle (p99.9)
// centred on x, y.
func marker(kind int, x, y float64) string {
	const r = 4.5
	switch kind {
	case 0:
		return fmt.Sprintf("M%.1f %.1fa%.1f %.1f 0 1 0 %.1f 0a%.1f %.1f 0 1 0 %.1f 0Z", x-r, y, r, r, 2*r, r, r, -2*r)
	case 1:
		return fmt.Sprintf("M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ", x, y-r, x+r, y, x, y+r, x-r, y)
	default:
		return fmt.Sprintf("M%.1f %.1fL%.1f %.1fL%.1f %.1fZ", x, y-r, x+r, y+r, x-r, y+r)
	}
}

func phaseTable(b *strings.Builder, rep *simReport, phase string) {
	fmt.Fprintf(b, "<h3>%s</h3>\n<p class=\"note\">%s</p>\n", phase, html.EscapeString(phaseTitles[phase]))
	fmt.Fprintf(b, "<table class=\"phase-table\" data-phase=\"%s\"><tr><th>implementation</th><th>segments/s</th><th>p50</th><th>p99</th><th>p99.9</th>"+
		"<th>allocs/segment</th><th>heap B/conn</th><th>segments</th><th>tables after</th><th>notes</th></tr>\n", phase)
	for i := range rep.Phases {
		r := &rep.Phases[i]
		if r.Phase != phase {
			continue
		}
		bpc := "–"
		if r.HeapBytesPerConn > 0 {
			bpc = fmt.Sprintf("%.0f", r.HeapBytesPerConn)
		}
		fmt.Fprintf(b, "<tr><td style=\"color:%s\">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.2f</td><td>%s</td><td>%d</td><td>%d / %d</td><td class=\"note\">%s</td></tr>\n",
			colors[r.Impl], r.Impl, formatRate(r.SegmentsPerSec), formatNs(r.P50), formatNs(r.P99), formatNs(r.P999), r.AllocsPerSegment, bpc,
			r.Segments, r.Census.Entries, r.Census.TimeWaits, html.EscapeString(strings.Join(r.Notes, "; ")))
	}
	b.WriteString("</table>\n")
	for i := range rep.Phases {
		if r := &rep.Phases[i]; r.Phase == phase && r.Counters != nil {
			fmt.Fprintf(b, "<p class=\"note\">socktable: accept-queue overflows %d, TIME_WAIT overflows %d, port-pick failures %d; MIB counters: %s</p>\n",
				r.Counters.ListenOverflows, r.Counters.TCPTimeWaitOverflow, r.ConnectFailures, html.EscapeString(countersText(r)))
		}
	}
}
