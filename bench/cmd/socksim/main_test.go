package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunPrintsTableAndWritesPlot(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plot.html")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-max-sockets", "1000", "-duration", "5ms", "-out", out}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	text := stdout.String()
	for _, want := range []string{"sockets", "socktable", "linear", "rwmutex", "syncmap", "xsync", "\n       100", "\n      1000", "plot: " + out} {
		require.Contains(t, text, want)
	}
	require.Empty(t, stderr.String(), "no progress bar when stderr is not a terminal")
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(page), "<!doctype html>"))
	require.Equal(t, len(designs), strings.Count(string(page), "<polyline"))
}

func TestRunJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-max-sockets", "200", "-duration", "2ms", "-json", "-out", ""}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var rep report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 2*len(designs), "two socket counts: 100 and 200")
	for _, r := range rep.Results {
		require.Positive(t, r.Lookups, "%+v", r)
		require.Positive(t, r.NsPerLookup, "%+v", r)
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"-max-sockets", "1"}, {"-duration", "0s"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), "%v", args)
		require.Contains(t, stderr.String(), "usage: socksim", "%v", args)
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "-max-sockets")
}

func TestSocketCounts(t *testing.T) {
	require.Equal(t, []int{100, 1000, 10000, 100000, 1000000}, socketCounts(1000000))
	require.Equal(t, []int{100, 250}, socketCounts(250))
	require.Equal(t, []int{50}, socketCounts(50))
}

// TestDesignsAgree checks every design finds what was inserted and
// forgets what was removed, so the simulator compares equals.
func TestDesignsAgree(t *testing.T) {
	for _, d := range designs {
		o := newDesign(d, 10, nil)
		for i := range 50 {
			o.insert(flow(i), &sock{id: i})
		}
		for i := 0; i < 50; i += 2 {
			o.remove(flow(i))
		}
		for i := range 50 {
			s, ok := o.lookup(flow(i))
			require.Equal(t, i%2 == 1, ok, "%s: flow %d", d, i)
			if ok {
				require.Equal(t, i, s.id, d)
			}
		}
	}
}
