package main

import (
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// domCheck runs in the browser after the report has rendered and writes
// what it measured into a <pre id="dom-check">: per SVG, the plot box's
// rendered rectangle, and per series the points whose rendered centre
// lies inside it (NaN coordinates never do); the tick labels; and the
// phase tables' rows.
const domCheck = `<script>
window.addEventListener("load", () => {
  const out = {svgs: {}, tables: {}};
  for (const svg of document.querySelectorAll("svg")) {
    const box = svg.querySelector("rect.plot-box").getBoundingClientRect();
    const s = {box: [box.width, box.height], series: {}, points: {},
      xticks: svg.querySelectorAll("text.x-tick").length, yticks: svg.querySelectorAll("text.y-tick").length,
      xlabel: (svg.querySelector("text.x-label") || {}).textContent || ""};
    for (const g of svg.querySelectorAll("g.series")) {
      let inside = 0, all = 0;
      for (const p of g.querySelectorAll(".point")) {
        all++;
        const r = p.getBoundingClientRect();
        const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
        if (Number.isFinite(cx) && Number.isFinite(cy) && r.width > 0 &&
            cx >= box.left - 0.5 && cx <= box.right + 0.5 && cy >= box.top - 0.5 && cy <= box.bottom + 0.5) inside++;
      }
      s.series[g.dataset.impl] = inside;
      s.points[g.dataset.impl] = all;
    }
    out.svgs[svg.id] = s;
  }
  for (const t of document.querySelectorAll("table.phase-table")) {
    out.tables[t.dataset.phase] = t.querySelectorAll("tr").length - 1;
  }
  out.title = document.title;
  const pre = document.createElement("pre");
  pre.id = "dom-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>`

type domResult struct {
	SVGs map[string]struct {
		Box    [2]float64     `json:"box"`
		Series map[string]int `json:"series"`
		Points map[string]int `json:"points"`
		XTicks int            `json:"xticks"`
		YTicks int            `json:"yticks"`
		XLabel string         `json:"xlabel"`
	} `json:"svgs"`
	Tables map[string]int `json:"tables"`
	Title  string         `json:"title"`
}

// browser finds a headless Chromium. Under CI=true a missing one fails
// the test (.ci/run installs Debian's); elsewhere the test is skipped.
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found: CI must render the report (.ci/run installs Debian's chromium)")
	}
	t.Skip("no Chromium on this machine (apt-get install chromium); CI=true makes this a failure")
	return ""
}

// TestReportRendersInBrowser renders the HTML report of a short run in
// headless Chromium and checks the rendered DOM: every implementation's
// series has one finite point inside the plot box per socket count, every
// phase's latency chart its three percentiles per implementation, the
// axes their ticks, and every phase its table.
func TestReportRendersInBrowser(t *testing.T) {
	chrome := browser(t)
	rep, page := runShort(t)
	src, err := os.ReadFile(page)
	require.NoError(t, err)
	checked := filepath.Join(filepath.Dir(page), "checked.html")
	require.NoError(t, os.WriteFile(checked, []byte(strings.Replace(string(src), "</body>", domCheck+"</body>", 1)), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=5000", "--dump-dom", "file://"+checked)
	dom, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", dom)
	m := regexp.MustCompile(`(?s)<pre id="dom-check">(.*?)</pre>`).FindSubmatch(dom)
	require.NotNil(t, m, "the check script ran: %.2000s", dom)
	var got domResult
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &got))

	require.Equal(t, "socksim: nginx", got.Title)
	sizes := scalingSizes(rep)
	scaling, ok := got.SVGs["scaling"]
	require.True(t, ok, "the scaling plot is there")
	require.Greater(t, scaling.Box[0], 300.0)
	require.Greater(t, scaling.Box[1], 200.0)
	require.Equal(t, len(sizes), scaling.XTicks, "one tick per socket count")
	require.GreaterOrEqual(t, scaling.YTicks, 2)
	require.Equal(t, "sockets", scaling.XLabel)
	for _, impl := range rep.Impls {
		require.Equal(t, len(sizes), scaling.Series[impl], "%s: its points inside the plot box", impl)
		require.Equal(t, len(sizes), scaling.Points[impl], "%s", impl)
	}
	for _, phase := range phasesOf(rep) {
		chart, ok := got.SVGs["latency-"+phase]
		require.True(t, ok, "the %s latency chart is there", phase)
		require.Equal(t, len(rep.Impls), chart.XTicks, phase)
		require.GreaterOrEqual(t, chart.YTicks, 2, phase)
		for _, impl := range rep.Impls {
			require.Equal(t, 3, chart.Series[impl], "%s %s: p50, p99 and p99.9 inside the plot box", phase, impl)
		}
		require.Equal(t, len(rep.Impls), got.Tables[phase], "the %s table has a row per implementation", phase)
	}
}
