package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// committedCapture is the loopback capture of nginx serving wrk that
// bench/traces/capture.sh made, with its manifest beside it.
const committedCapture = "../../testdata/nginx-wrk.pcap.gz"

// The committed capture replays exactly: every segment's verdict is the
// kernel's, and every kind of verdict the kernel gave in it occurs.
func TestReplayCapture(t *testing.T) {
	rep, err := replayFile(committedCapture)
	require.NoError(t, err)
	require.Zero(t, rep.Misdirected, "disagreements: %+v", rep.Disagreements)
	require.Greater(t, rep.Segments, 10000)
	require.Equal(t, 4, rep.Listeners, "two reuseport groups of two")
	for _, v := range []verdict{vConn, vListener, vComplete, vTWAck, vTWDrop, vTWTakeover, vNoSocket, vListenerRst} {
		require.Positive(t, rep.Verdicts[v.String()], "no %s verdict in %v", v, rep.Verdicts)
	}
	require.Zero(t, rep.Skipped[skipNoOracle], "every segment's verdict is known")
	require.Zero(t, rep.Skipped[skipTruncated], "a 96-byte snap length keeps every header")
	require.Positive(t, rep.Counters.TWKilled, "SYNs took TIME_WAIT tuples over")
	require.Positive(t, rep.Counters.TW+uint64(rep.Verdicts[vTWTakeover.String()]), "connections closed into TIME_WAIT")
}

// A capture that starts in the middle of its flows (the committed one
// with its first packets cut off) replays exactly too: the flows open at
// its start are seeded as established.
func TestReplaySeedsOpenFlows(t *testing.T) {
	c, err := readCapture(committedCapture)
	require.NoError(t, err)
	specs, err := readManifest(manifestPath(committedCapture))
	require.NoError(t, err)
	// Cut where keep-alive connections are open: after the first
	// handshakes, before their data is done.
	cut := 0
	for i, p := range c.packets {
		if p.seg.PayloadLen > 0 && i > 200 {
			cut = i
			break
		}
	}
	require.Positive(t, cut)
	c.packets = c.packets[cut:]
	rep, err := replay(c, specs)
	require.NoError(t, err)
	require.Positive(t, rep.Seeded)
	require.Zero(t, rep.Misdirected, "disagreements: %+v", rep.Disagreements)
}

// The check can fail: with the IPv6 listener left out of the manifest,
// the SYNs the kernel answered on [::1]:8081 find no socket in the Demux,
// and each is reported.
func TestReplayReportsMisdirection(t *testing.T) {
	c, err := readCapture(committedCapture)
	require.NoError(t, err)
	specs, err := readManifest(manifestPath(committedCapture))
	require.NoError(t, err)
	var v4 []listenerSpec
	for _, s := range specs {
		if s.Addr == "127.0.0.1" {
			v4 = append(v4, s)
		}
	}
	require.Len(t, v4, 1)
	rep, err := replay(c, v4)
	require.NoError(t, err)
	require.Positive(t, rep.Misdirected)
	require.NotEmpty(t, rep.Disagreements)
	d := rep.Disagreements[0]
	require.Equal(t, vListener.String(), d.Want)
	require.Equal(t, vNoSocket.String(), d.Got)

	// And with the oracle changed: one SYN-ACK of the kernel's turned into
	// an RST says the SYN found no socket, which the Demux contradicts.
	c, err = readCapture(committedCapture)
	require.NoError(t, err)
	for i := range c.packets {
		if s := &c.packets[i].seg; s.Flags == tuple.SYN|tuple.ACK {
			s.Flags = tuple.RST | tuple.ACK
			break
		}
	}
	rep, err = replay(c, specs)
	require.NoError(t, err)
	require.Positive(t, rep.Misdirected)
	require.Equal(t, vNoSocket.String(), rep.Disagreements[0].Want)
	require.Equal(t, vListener.String(), rep.Disagreements[0].Got)
}

// `socksim replay -json FILE` prints one object with the fields CI reads,
// and exits 0 on an exact replay; bad usage exits 2.
func TestReplayCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"replay", "-json", committedCapture}, &out, &errOut), errOut.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &m))
	for _, k := range []string{"segments", "flows", "misdirected", "skipped", "segments_per_sec"} {
		require.Contains(t, m, k)
	}
	require.EqualValues(t, 0, m["misdirected"])
	for _, k := range []string{"rates", "deliver_rates"} {
		rates, ok := m[k].(map[string]any)
		require.True(t, ok, k)
		for _, impl := range knownImpls {
			require.Positive(t, rates[impl], "%s %s", k, impl)
		}
	}
	require.Equal(t, m["segments_per_sec"], m["rates"].(map[string]any)["socktable"])

	out.Reset()
	require.Equal(t, 0, run([]string{"replay", committedCapture}, &out, &errOut))
	require.Contains(t, out.String(), "0 misdirected")
	require.Contains(t, out.String(), "replay rate")

	require.Equal(t, 2, run([]string{"replay"}, &out, &errOut))
	require.Equal(t, 2, run([]string{"replay", "-bogus", committedCapture}, &out, &errOut))
	missing := filepath.Join(t.TempDir(), "none.pcap")
	require.Equal(t, 1, run([]string{"replay", missing}, &out, &errOut))
	notCapture := filepath.Join(t.TempDir(), "x.pcap")
	require.NoError(t, os.WriteFile(notCapture, []byte("not a capture"), 0o644))
	require.Equal(t, 1, run([]string{"replay", notCapture}, &out, &errOut))
}

// Without a manifest the listeners come from the SYN-ACKs.
func TestReplayWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(committedCapture)
	require.NoError(t, err)
	p := filepath.Join(dir, "copy.pcap.gz")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	rep, err := replayFile(p)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Listeners, "one per endpoint, no reuseport group known")
	require.Zero(t, rep.Misdirected, "disagreements: %+v", rep.Disagreements)
}

// BenchmarkReplay: the committed capture's script (every segment and the
// lifecycle calls of its checked replay) through a fresh demux per run;
// one op is one run of the whole script.
func BenchmarkReplay(b *testing.B) {
	c, err := readCapture("../../testdata/nginx-wrk.pcap.gz")
	if err != nil {
		b.Fatal(err)
	}
	specs, err := readManifest("../../testdata/nginx-wrk.listeners.json")
	if err != nil {
		b.Fatal(err)
	}
	r, err := newCheckedReplay(c, specs)
	if err != nil {
		b.Fatal(err)
	}
	segments := 0
	for i := range r.script.ops {
		if r.script.ops[i].kind == opDeliver {
			segments++
		}
	}
	for _, impl := range knownImpls {
		b.Run("impl="+impl, func(b *testing.B) {
			b.ReportAllocs()
			var timed time.Duration
			for b.Loop() {
				b.StopTimer()
				h, err := newReplayHost(impl, specs)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t, _ := runScript(r.script.ops, len(r.script.ends), h, 0)
				timed += t
				b.StopTimer()
				h.close()
				b.StartTimer()
			}
			b.ReportMetric(float64(segments)*float64(b.N)/timed.Seconds(), "segments/s")
		})
	}
}
