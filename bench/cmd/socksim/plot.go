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

// plotHTML renders the results as a self-contained page: a log-log SVG
// line chart (sockets against ns per lookup) and the table of numbers.
func plotHTML(rep report, sizes []int) string {
	const w, h, left, right, top, bottom = 760, 440, 70, 150, 30, 50
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Results {
		lo, hi = math.Min(lo, r.NsPerLookup), math.Max(hi, r.NsPerLookup)
	}
	yMin, yMax := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yMax == yMin {
		yMax++
	}
	xMin, xMax := math.Log10(float64(sizes[0])), math.Log10(float64(sizes[len(sizes)-1]))
	if xMax == xMin {
		xMax++
	}
	px := func(n int) float64 {
		return left + (math.Log10(float64(n))-xMin)/(xMax-xMin)*(w-left-right)
	}
	py := func(ns float64) float64 {
		return top + (1-(math.Log10(ns)-yMin)/(yMax-yMin))*(h-top-bottom)
	}
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><meta charset=\"utf-8\"><title>socksim</title>" +
		"<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}" +
		"td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>Cost of finding a segment's owner</h1>\n<p>ns per lookup, all %d cores together, half the sockets churning; %s per point. Lower is better.</p>\n",
		rep.GOMAXPROCS, html.EscapeString(rep.Duration))
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-size=\"12\">\n", w, h)
	for e := yMin; e <= yMax; e++ { // horizontal grid, one line per decade
		y := py(math.Pow(10, e))
		fmt.Fprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			left, w-right, y, y, left-6, y+4, formatNs(math.Pow(10, e)))
	}
	for _, n := range sizes {
		x := px(n)
		fmt.Fprintf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
			x, x, top, h-bottom, x, h-bottom+16, n)
	}
	fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">sockets</text>\n", (left+w-right)/2, h-10)
	for i, d := range designs {
		var pts []string
		for _, n := range sizes {
			if c := lookupCost(rep.Results, d, n); !math.IsNaN(c) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(n), py(c)))
			}
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", colors[d], strings.Join(pts, " "))
		ly := top + 20*i
		fmt.Fprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
			w-right+15, w-right+40, ly, ly, colors[d], w-right+46, ly+4, d)
	}
	b.WriteString("</svg>\n<table><tr><th>sockets</th>")
	for _, d := range designs {
		fmt.Fprintf(&b, "<th>%s</th>", d)
	}
	b.WriteString("</tr>\n")
	for _, n := range sizes {
		fmt.Fprintf(&b, "<tr><td>%d</td>", n)
		for _, d := range designs {
			fmt.Fprintf(&b, "<td>%s</td>", formatNs(lookupCost(rep.Results, d, n)))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table></body></html>\n")
	return b.String()
}
