package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	shortOnce   sync.Once
	shortReport *simReport
	shortHTML   string
	shortErr    string
)

// runShort runs the default scenario in a short mode — 2,000 connections
// (TIME_WAIT scaled with them), a 3 s target, socket counts up to 10⁴ —
// once for the tests that read its report.
func runShort(t *testing.T) (*simReport, string) {
	t.Helper()
	shortOnce.Do(func() {
		dir, err := os.MkdirTemp("", "socksim-test")
		if err != nil {
			shortErr = err.Error()
			return
		}
		shortHTML = filepath.Join(dir, "report.html")
		var stdout, stderr bytes.Buffer
		args := []string{"-conns", "2000", "-duration", "3s", "-max-sockets", "10000", "-json", "-report", shortHTML}
		if code := run(args, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			shortErr = fmt.Sprintf("exit %d, stderr (no progress bar when it is not a terminal): %s", code, stderr.String())
			return
		}
		var rep simReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			shortErr = err.Error()
			return
		}
		shortReport = &rep
	})
	require.Empty(t, shortErr)
	return shortReport, shortHTML
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shortHTML != "" {
		os.RemoveAll(filepath.Dir(shortHTML))
	}
	os.Exit(code)
}

// TestDefaultScenarioShort checks the report's invariants: every phase of
// every implementation present, no connection lost, the counts adding up,
// socktable's counters showing what each phase is about, and the JSON
// round-tripping.
func TestDefaultScenarioShort(t *testing.T) {
	rep, html := runShort(t)
	sc, err := loadScenario("nginx")
	require.NoError(t, err)
	require.Equal(t, sc.Impls, rep.Impls)
	require.Equal(t, 2000, rep.Conns)
	require.Equal(t, sc.TimeWait*2000/sc.Conns, rep.TimeWait)
	require.Zero(t, rep.Lost)

	require.Len(t, rep.Phases, len(sc.Phases)*len(sc.Impls))
	for _, impl := range sc.Impls {
		for _, phase := range sc.Phases {
			i := slices.IndexFunc(rep.Phases, func(r phaseResult) bool { return r.Impl == impl && r.Phase == phase })
			require.GreaterOrEqual(t, i, 0, "%s %s missing", impl, phase)
			r := rep.Phases[i]
			var sum int64
			for _, n := range r.Outcomes {
				sum += n
			}
			require.Equal(t, r.Segments, sum, "%s %s: outcomes add up to the segments", impl, phase)
			require.Positive(t, r.Segments, "%s %s", impl, phase)
			require.Positive(t, r.Rounds, "%s %s", impl, phase)
			require.Positive(t, r.P50, "%s %s", impl, phase)
			require.LessOrEqual(t, r.P50, r.P99, "%s %s", impl, phase)
			require.LessOrEqual(t, r.P99, r.P999, "%s %s", impl, phase)
			require.Zero(t, r.Lost, "%s %s", impl, phase)
			require.Positive(t, r.Checked, "%s %s", impl, phase)
			require.Equal(t, impl == "socktable", r.Counters != nil, "%s %s: MIB counters are socktable's", impl, phase)
			switch phase {
			case "open":
				require.Equal(t, int64(2000), r.Planned)
				require.Equal(t, r.Planned, r.Opened+r.Untimed, "%s: every connection opened, timed or not", impl)
				require.Equal(t, 3*r.Opened, r.Segments)
				require.Equal(t, r.Opened, r.Outcomes["completed"])
				require.Equal(t, 2000, r.Census.Entries, "%s", impl)
				require.Positive(t, r.HeapBytesPerConn, "%s", impl)
			case "steady":
				require.Equal(t, r.Segments, r.Outcomes["to-conn"], "%s: every keep-alive segment reached its connection", impl)
				if impl == "socktable" { // the baselines' few segments make the runtime's own allocations count
					require.Less(t, r.AllocsPerSegment, 0.001, "no allocation per segment (the runtime's own may fall in the window)")
				}
			case "churn", "connect":
				require.Equal(t, r.Opened, r.Closed, "%s %s: every connection opened was closed", impl, phase)
				require.Positive(t, r.Opened, "%s %s", impl, phase)
				require.Zero(t, r.ConnectFailures, "%s %s", impl, phase)
			}
		}
	}
	st := func(phase string) phaseResult {
		i := slices.IndexFunc(rep.Phases, func(r phaseResult) bool { return r.Impl == "socktable" && r.Phase == phase })
		return rep.Phases[i]
	}
	churn := st("churn")
	require.InDelta(t, rep.TimeWait, churn.Census.TimeWaits, float64(rep.TimeWait)/10+64,
		"the simulated clock keeps TIME_WAIT near its target")
	require.Positive(t, churn.Counters.TW, "TIME_WAIT entries expired on the simulated clock")
	require.Equal(t, 2000, churn.Census.Entries, "churn leaves the established connections as they were")
	flood := st("synflood")
	require.Positive(t, flood.Counters.ListenOverflows, "the stuck listener's full accept queue dropped SYNs")
	require.Positive(t, flood.Counters.TCPReqQFullDoCookies, "the full SYN queue answered with cookies")
	require.Equal(t, int64(flood.Counters.ListenOverflows), flood.Outcomes["dropped"], "the drops are the full accept queue's")
	require.LessOrEqual(t, flood.Census.Entries, 2000+stuckBacklog+1+reuseportGroup*(serverBacklog+1)+stuckBacklog+1,
		"socktable's SYN queues are bounded by the backlogs")
	require.Equal(t, uint64(rep.TimeWait)+uint64(churn.Closed)-churn.Counters.TW-churn.Counters.TCPTimeWaitOverflow,
		uint64(churn.Census.TimeWaits), "TIME_WAIT holds the prefilled entries and the closes, less those that expired")

	sizes := []int{100, 1000, 10000}
	require.Len(t, rep.Scaling, len(sizes)*len(sc.Impls))
	for _, p := range rep.Scaling {
		require.Contains(t, sizes, p.Sockets)
		require.Positive(t, p.NsPerSegment, "%+v", p)
		require.Positive(t, p.Segments, "%+v", p)
		require.Zero(t, p.Lost, "%+v", p)
	}

	again, err := json.Marshal(rep)
	require.NoError(t, err)
	var back simReport
	require.NoError(t, json.Unmarshal(again, &back))
	require.Equal(t, *rep, back, "the JSON report round-trips")

	page, err := os.ReadFile(html)
	require.NoError(t, err)
	require.Equal(t, html, rep.HTML)
	require.True(t, strings.HasPrefix(string(page), "<!doctype html>"))
	require.Equal(t, len(sc.Phases), strings.Count(string(page), "class=\"phase-table\""))
}

// TestTextReport: the report a person reads names every phase, the
// scaling table and the HTML file.
func TestTextReport(t *testing.T) {
	html := filepath.Join(t.TempDir(), "r.html")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-conns", "500", "-duration", "1s", "-max-sockets", "1000", "-impls", "rwmutex", "-report", html}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	text := stdout.String()
	for _, want := range []string{"scenario nginx", "open:", "steady:", "churn:", "synflood:", "connect:", "MIB counters:",
		"ListenOverflows", "accept-queue overflows 0, TIME_WAIT overflows 0, port-pick failures 0", "socktable", "rwmutex", "\n         100", "\n        1000", "lost connections: 0", "summary\n  open:", "steady:   socktable", "faster by", "report: " + html} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "\n  linear ")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"-conns", "-1"}, {"-duration", "0s"}, {"extra"}, {"-cores", "0"},
		{"-scenario", "nope"}, {"-impls", "btree"}, {"-max-sockets", "-5"}} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), "%v", args)
		require.Contains(t, stderr.String(), "usage: socksim", "%v", args)
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	for _, flag := range []string{"-conns", "-duration", "-cores", "-scenario", "-json", "-report"} {
		require.Contains(t, stderr.String(), flag)
	}
}

// TestScenarioFiles: a scenario from a file is checked as strictly as
// the embedded ones.
func TestScenarioFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"typo.json":       `{"name":"x","conns":10,"flood_sources":1,"impls":["socktable"],"phasez":[]}`,
		"nophase.json":    `{"name":"x","conns":10,"flood_sources":1,"impls":["socktable"],"phases":["open","warp"]}`,
		"order.json":      `{"name":"x","conns":10,"flood_sources":1,"impls":["socktable"],"phases":["steady"]}`,
		"noconns.json":    `{"name":"x","conns":0,"flood_sources":1,"impls":["socktable"]}`,
		"baseline.json":   `{"name":"x","conns":10,"flood_sources":1,"impls":["xsync"]}`,
		"pressure.json":   `{"name":"x","conns":10,"flood_sources":1,"impls":["socktable"],"connect_pressure":1}`,
		"not-json.json":   `conns: 10`,
		"badscaling.json": `{"name":"x","conns":10,"flood_sources":1,"impls":["socktable"],"scaling":[0]}`,
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
		_, err := loadScenario(path)
		require.Error(t, err, name)
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run([]string{"-scenario", path}, &stdout, &stderr), name)
	}
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"name":"tiny","conns":300,"timewait":600,"flood_sources":64,`+
		`"phases":["open","steady","churn"],"scaling":[100],"impls":["socktable","xsync"]}`), 0o644))
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-scenario", good, "-duration", "300ms", "-json", "-report", ""}, &stdout, &stderr), stderr.String())
	var rep simReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Equal(t, "tiny", rep.Scenario)
	require.Len(t, rep.Phases, 6)
	require.Len(t, rep.Scaling, 2)
	require.Empty(t, rep.HTML)
}

func TestHist(t *testing.T) {
	var h hist
	require.Zero(t, h.quantile(0.5))
	for i := 1; i <= 1000; i++ {
		h.add(float64(i))
	}
	require.InEpsilon(t, 500, h.quantile(0.5), 0.03)
	require.InEpsilon(t, 990, h.quantile(0.99), 0.03)
	require.InEpsilon(t, 999, h.quantile(0.999), 0.03)
	var o hist
	o.add(1e9)
	h.merge(&o)
	require.Equal(t, int64(1001), h.n)
	require.InEpsilon(t, 1e9, h.quantile(1), 0.03)
	h.add(0) // a round cheaper than the clock read lands in the lowest bucket
	require.Less(t, h.quantile(0), 0.1)
}
