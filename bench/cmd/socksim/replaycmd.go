package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
)

// runReplay is `socksim replay [-json] FILE`: it replays the capture and
// exits 1 if any segment was misdirected (answered otherwise than the
// kernel answered it), 2 for bad usage.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socksim replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: socksim replay [-json] FILE\n\n"+
			"Replays a packet capture (pcap or pcapng, gzipped or not) through socktable.Demux and checks every\n"+
			"segment's verdict against the reply the kernel sent in the capture. The listeners come from\n"+
			"FILE's manifest (x.listeners.json beside x.pcap or x.pcapng), or else from the SYN-ACKs.\n"+
			"Exit status 1 if any segment is misdirected.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "socksim replay: one capture file")
		fs.Usage()
		return 2
	}
	rep, err := replayFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "socksim replay:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "socksim replay:", err)
			return 1
		}
	} else {
		printReplay(stdout, rep)
	}
	if rep.Misdirected > 0 {
		return 1
	}
	return 0
}

// printReplay writes the report for a person.
func printReplay(w io.Writer, rep *replayReport) {
	fmt.Fprintf(w, "replay of %s\n\n", rep.File)
	fmt.Fprintf(w, "  %d frames, %d TCP segments in %d flows (%d open before the capture), %d listeners\n",
		rep.Frames, rep.Segments, rep.Flows, rep.Seeded, rep.Listeners)
	fmt.Fprintf(w, "  %d segments agree with the kernel's replies, %d misdirected\n", rep.Agreed, rep.Misdirected)
	fmt.Fprintf(w, "\n  verdicts the kernel and the Demux agreed on:\n")
	for _, k := range slices.Sorted(maps.Keys(rep.Verdicts)) {
		fmt.Fprintf(w, "    %-22s %8d\n", k, rep.Verdicts[k])
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintf(w, "\n  skipped:\n")
		for _, k := range slices.Sorted(maps.Keys(rep.Skipped)) {
			fmt.Fprintf(w, "    %-22s %8d\n", k, rep.Skipped[k])
		}
	}
	if len(rep.Disagreements) > 0 {
		fmt.Fprintf(w, "\n  disagreements (first %d):\n", len(rep.Disagreements))
		for _, d := range rep.Disagreements {
			fmt.Fprintf(w, "    packet %d, %s: the kernel %s, the Demux %s (%s)\n", d.Packet, d.Flow, d.Want, d.Got, d.Why)
		}
	}
	c := rep.Counters
	fmt.Fprintf(w, "\n  Demux counters: delivered %d, answered %d, resets %d, dropped %d; TW %d, TWKilled %d, TWRecycled %d, SyncookiesSent %d, ListenOverflows %d\n",
		c.Delivered, c.Answered, c.Resets, c.Dropped, c.TW, c.TWKilled, c.TWRecycled, c.SyncookiesSent, c.ListenOverflows)
	fmt.Fprintf(w, "\n  replay rate, segments/s on one goroutine: the whole script (DeliverBatch runs and the lifecycle\n"+
		"  calls between them: bind, connect, establish, accept, TIME_WAIT, abort) and DeliverBatch alone.\n"+
		"  The baselines keep no bind table, accept queue or SYN queue, so their lifecycle calls do less:\n")
	fmt.Fprintf(w, "    %-10s %10s %10s\n", "impl", "script", "deliver")
	st, std := rep.Rates["socktable"], rep.DeliverRates["socktable"]
	for _, impl := range knownImpls {
		v, ok := rep.Rates[impl]
		if !ok {
			continue
		}
		d := rep.DeliverRates[impl]
		ratio := ""
		if impl != "socktable" && v > 0 && d > 0 {
			ratio = fmt.Sprintf("  socktable %.2fx, %.2fx", st/v, std/d)
		}
		fmt.Fprintf(w, "    %-10s %10s %10s%s\n", impl, formatRate(v), formatRate(d), ratio)
	}
	fmt.Fprintf(w, "  the checked replay itself: %s segments/s, its bookkeeping included\n", formatRate(rep.CheckedPerSec))
}
