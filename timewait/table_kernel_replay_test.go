package timewait_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// The segments corpus: how the real kernel's TIME_WAIT and FIN_WAIT2 mini
// sockets answered segments, recorded by internal/kernelcorpus -segments
// (see its doc comment for how the cases were made, and internal/corpus,
// which both import, for the format). Each case is replayed against a
// Table holding the entry the recorded handshake and close leave, and
// Process must answer every probe as the kernel did, keep or drop the
// entry as the kernel did, and say so in Reply.Fate. Extra corpora
// in the same format, from other kernels, are named in
// SOCKTABLE_TWSEG_CORPUS (colon-separated paths).

// pktFlags is the packet's flags.
func pktFlags(t *testing.T, p *corpus.Packet) tuple.Flags {
	f, err := p.FlagBits()
	require.NoError(t, err)
	return f
}

// pktEnd is the sequence number after the packet (TCP_SKB_CB end_seq).
func pktEnd(t *testing.T, p *corpus.Packet) uint32 {
	e := p.Seq + uint32(p.Len)
	if pktFlags(t, p).Has(tuple.SYN) {
		e++
	}
	if pktFlags(t, p).Has(tuple.FIN) {
		e++
	}
	return e
}

// pktSegment is the packet as the demultiplexer hands it to Process.
func pktSegment(t *testing.T, p *corpus.Packet, tp tuple.Tuple) tuple.Segment {
	s := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: pktFlags(t, p),
		Seq: p.Seq, Ack: p.Ack, Window: p.Window, PayloadLen: uint16(p.Len)}
	if p.TS != nil {
		s.HasTimestamps, s.TSval, s.TSecr = true, p.TS[0], p.TS[1]
	}
	return s
}

func readTWCorpus(t *testing.T, path string) []corpus.SegmentCase {
	cases, err := corpus.ReadSegmentCases(path)
	require.NoError(t, err)
	require.NotEmpty(t, cases, path)
	return cases
}

// twReplay is one case's replay: the table, its clock and what the setup
// tells about the connection.
type twReplay struct {
	c      *corpus.SegmentCase
	tp     tuple.Tuple
	clock  *timewait.ManualClock
	tab    *timewait.Table[struct{}]
	origin int64 // the case's first ClockMS, which the table's clock maps to twClockBase
	synack corpus.Packet
}

// twClockBase is where a replay's table clock starts: any time works, as
// long as the recorded gaps between packets are kept.
const twClockBase = time.Hour

// at is the table-clock time of a recorded CLOCK_MONOTONIC millisecond.
func (r *twReplay) at(ms int64) time.Duration {
	return twClockBase + time.Duration(ms-r.origin)*time.Millisecond
}

// state derives the State the kernel's mini socket holds from the setup's
// packets, the way tcp_time_wait copies it from the full socket:
//   - RcvNxt: one past the peer's last setup segment (its FIN in
//     TIME_WAIT, its ACK of our FIN in FIN_WAIT2).
//   - SndNxt: one past the kernel's FIN.
//   - RcvWScale: the shift in the kernel's SYN-ACK, if the peer's SYN
//     offered scaling too (else 0).
//   - RcvWnd: the window of the kernel's last setup packet, scaled up by
//     that shift (tcp_receive_window right after the kernel advertised it;
//     Reply.Window scales it back down, so low bits lost here do not show).
//   - Timestamps: negotiated when the SYN and the SYN-ACK both carry them.
//     TSRecent is the TSval of the peer's last setup segment: every one
//     was in order, so each replaced ts_recent (tcp_replace_ts_recent),
//     stamped when the peer sent it.
//   - TSOffset: the kernel's TSval is its millisecond clock
//     (CLOCK_MONOTONIC, tcp_clock_ms) plus a per-connection offset; the
//     SYN-ACK's TSval less the latest clock it could have been made at
//     gives the offset, or up to the SYN-ACK's ClockMS spread less.
func (r *twReplay) state(t *testing.T) timewait.State {
	c := r.c
	var syn, kfin, lastKernel, lastPeer *corpus.Packet
	for i := range c.Setup {
		p := &c.Setup[i]
		f := pktFlags(t, p)
		switch {
		case p.Dir == "peer" && f == tuple.SYN:
			syn = p
		case p.Dir == "kernel" && f == tuple.SYN|tuple.ACK:
			r.synack = *p
		case p.Dir == "kernel" && f.Has(tuple.FIN) && kfin == nil:
			kfin = p
		}
		if p.Dir == "kernel" {
			lastKernel = p
		} else {
			lastPeer = p
		}
	}
	require.NotNil(t, syn, "%s: no SYN in the setup", c.ID)
	require.NotNil(t, kfin, "%s: no kernel FIN in the setup", c.ID)
	require.NotEmpty(t, r.synack.Flags, "%s: no SYN-ACK in the setup", c.ID)
	s := timewait.State{RcvNxt: pktEnd(t, lastPeer), SndNxt: pktEnd(t, kfin)}
	switch c.Substate {
	case "TIME_WAIT":
		s.Substate = timewait.TimeWait
	case "FIN_WAIT2":
		s.Substate = timewait.FinWait2
	default:
		t.Fatalf("%s: substate %q", c.ID, c.Substate)
	}
	if syn.WScale != nil && r.synack.WScale != nil {
		s.RcvWScale = *r.synack.WScale
	}
	s.RcvWnd = uint32(lastKernel.Window) << s.RcvWScale
	if syn.TS != nil && r.synack.TS != nil {
		require.NotNil(t, lastPeer.TS, "%s: timestamps negotiated, the peer's last segment has none", c.ID)
		s.HasTimestamps = true
		s.TSRecent = lastPeer.TS[0]
		s.TSRecentStamp = r.at(lastPeer.ClockMS[0])
		s.TSOffset = r.synack.TS[0] - uint32(r.synack.ClockMS[1])
	}
	return s
}

// twAlive reports whether a probe's Entry names a live mini socket. The
// corpus spells the substate as /proc/net/tcp does, and so does
// Substate's String.
func twAlive(entry string) bool { return entry == "TIME_WAIT" || entry == "FIN_WAIT2" }

// replayTW replays one case and returns its disagreements with the kernel.
func replayTW(t *testing.T, c *corpus.SegmentCase) []string {
	// The rules assume Linux's defaults for these; a corpus from a host
	// that changed them would need them modelled first.
	require.Equal(t, 1, c.Sysctls["tcp_timestamps"], "%s: tcp_timestamps", c.ID)
	require.Equal(t, 1, c.Sysctls["tcp_window_scaling"], "%s: tcp_window_scaling", c.ID)
	limit := time.Duration(c.Sysctls["tcp_invalid_ratelimit"]) * time.Millisecond
	if limit == 0 {
		limit = -1 // the sysctl's 0 is no limit; Options' 0 is the default
	}
	r := &twReplay{c: c, clock: new(timewait.ManualClock), origin: c.Setup[0].ClockMS[0],
		tp: tuple.Tuple{Local: tuple.MustEndpoint(c.Local), Remote: tuple.MustEndpoint(c.Remote)}}
	tab, err := timewait.NewTable(timewait.TableOptions[struct{}]{Clock: r.clock, RFC1337: c.Sysctls["tcp_rfc1337"] != 0,
		InvalidRateLimit: limit, Shards: 1})
	require.NoError(t, err)
	defer tab.Close()
	r.tab = tab
	state := r.state(t)
	last := c.Setup[len(c.Setup)-1]
	r.clock.Set(r.at(last.ClockMS[1]))
	require.NoError(t, tab.Enter(r.tp, state, struct{}{}), c.ID)

	var diffs []string
	for i := range c.Probes {
		pr := &c.Probes[i]
		what := fmt.Sprintf("%s probe %d (%s %s)", c.ID, i, pr.Role, pr.Name)
		r.clock.Set(r.at(pr.Segment.ClockMS[0]))
		seg := pktSegment(t, &pr.Segment, r.tp)
		before, _ := tab.Lookup(r.tp)
		reply, _, ok := tab.Process(r.tp, &seg)
		if !ok {
			// No entry here, and none in the kernel (the previous probe's
			// survival check said so): the answer came from the listener
			// or the no-socket path, which is not this package's. It must
			// not look like a mini socket's ACK.
			for _, k := range pr.Replies {
				if !pktFlags(t, &k).Has(tuple.RST) {
					diffs = append(diffs, fmt.Sprintf("%s: no entry, yet the kernel answered %s", what, k.Flags))
				}
			}
			continue
		}
		diffs = append(diffs, r.compare(t, what, pr, &seg, reply)...)
		// Reply.Fate tells what the segment did to the entry, so the stack
		// need not look it up again: check it against the table.
		got, alive := tab.Lookup(r.tp)
		switch {
		case alive == (reply.Fate == timewait.FateRemoved):
			diffs = append(diffs, fmt.Sprintf("%s: fate %s, entry alive %v", what, reply.Fate, alive))
		case alive && (reply.Fate == timewait.FateTimeWait) != (before.Substate == timewait.FinWait2 && got.Substate == timewait.TimeWait):
			diffs = append(diffs, fmt.Sprintf("%s: fate %s, %s became %s", what, reply.Fate, before.Substate, got.Substate))
		}
		if reply.Verdict == timewait.VerdictNewSYN && c.Listener {
			// A listener takes the SYN: the stack inserts the new request
			// and removes the entry in one step (tcp_v4_rcv's
			// inet_twsk_deschedule_put), as Reply says.
			_, removed, err := tab.Replace(r.tp, func() error { return nil })
			require.NoError(t, err)
			require.True(t, removed)
		}
		got, alive = tab.Lookup(r.tp)
		switch {
		case alive != twAlive(pr.Entry):
			diffs = append(diffs, fmt.Sprintf("%s: entry alive %v afterwards, kernel holds %q", what, alive, pr.Entry))
		case alive && got.Substate.String() != pr.Entry:
			diffs = append(diffs, fmt.Sprintf("%s: entry in %s afterwards, kernel in %s", what, got.Substate, pr.Entry))
		}
	}
	return diffs
}

// compare checks Process's reply against the kernel's answer to the same
// segment.
func (r *twReplay) compare(t *testing.T, what string, pr *corpus.Probe, seg *tuple.Segment, reply timewait.Reply) []string {
	var diffs []string
	bad := func(format string, args ...any) {
		diffs = append(diffs, what+": "+fmt.Sprintf(format, args...))
	}
	if len(pr.Replies) > 1 {
		bad("the kernel sent %d packets; a mini socket sends at most one", len(pr.Replies))
		return diffs
	}
	if len(pr.Replies) == 0 {
		if reply.Verdict != timewait.VerdictDrop {
			bad("verdict %s, kernel sent nothing", reply.Verdict)
		}
		return diffs
	}
	k := &pr.Replies[0]
	kf := pktFlags(t, k)
	switch {
	case kf == tuple.SYN|tuple.ACK:
		// The listener answered with the ISN tcp_timewait_state_process
		// chose (tcp_tw_isn).
		if reply.Verdict != timewait.VerdictNewSYN || !r.c.Listener {
			bad("verdict %s (listener %v), kernel sent a SYN-ACK", reply.Verdict, r.c.Listener)
		} else if reply.ISN != k.Seq {
			bad("ISN %d, kernel's SYN-ACK has %d", reply.ISN, k.Seq)
		}
	case kf.Has(tuple.RST):
		if reply.Verdict != timewait.VerdictRST {
			bad("verdict %s, kernel sent %s", reply.Verdict, k.Flags)
		}
		// Reply leaves the reset to the stack, built from the segment as
		// for any (RFC 9293 3.10.7.1, tcp_v4_send_reset): check that the
		// kernel's is that one, so the stack's recipe is the kernel's.
		wantFlags, wantSeq, wantAck := tuple.RST, seg.Ack, uint32(0)
		if !seg.Flags.Has(tuple.ACK) {
			wantFlags, wantSeq, wantAck = tuple.RST|tuple.ACK, 0, pktEnd(t, &pr.Segment)
		}
		if kf != wantFlags || k.Seq != wantSeq || k.Ack != wantAck || k.TS != nil {
			bad("kernel's reset %s seq %d ack %d ts %v is not the one built from the segment (%s seq %d ack %d)",
				k.Flags, k.Seq, k.Ack, k.TS, wantFlags, wantSeq, wantAck)
		}
	case kf == tuple.ACK:
		// A mini socket's ACK (tcp_v4_timewait_ack). Linux sends it for
		// TCP_TW_ACK, and for TCP_TW_SYN when no listener takes the SYN;
		// Reply's ISN doc says the stack then builds the ACK from the
		// same fields.
		if reply.Verdict != timewait.VerdictACK && (reply.Verdict != timewait.VerdictNewSYN || r.c.Listener) {
			bad("verdict %s (listener %v), kernel sent an ACK", reply.Verdict, r.c.Listener)
			return diffs
		}
		if reply.Seq != k.Seq || reply.Ack != k.Ack || reply.Window != k.Window {
			bad("verdict %s: ACK seq %d ack %d window %d, kernel's seq %d ack %d window %d",
				reply.Verdict, reply.Seq, reply.Ack, reply.Window, k.Seq, k.Ack, k.Window)
		}
		if reply.Timestamps != (k.TS != nil) {
			bad("timestamps %v, kernel's ACK has them: %v", reply.Timestamps, k.TS != nil)
		} else if k.TS != nil {
			if reply.TSEcr != k.TS[1] {
				bad("TSecr %d, kernel's %d", reply.TSEcr, k.TS[1])
			}
			// TSval is the stack's clock plus TSOffset. The kernel's clock
			// read lies within the reply's ClockMS; the offset the State
			// was given (from the SYN-ACK) may be below the true one by up
			// to the SYN-ACK's ClockMS spread. So TSval - TSOffset must
			// fall in [lo, hi + spread]: the same offset, the same clock,
			// to the millisecond the recording allows.
			spread := r.synack.ClockMS[1] - r.synack.ClockMS[0]
			clock := k.TS[0] - reply.TSOffset
			lo, hi := uint32(k.ClockMS[0]), uint32(k.ClockMS[1]+spread)
			if int32(clock-lo) < 0 || int32(hi-clock) < 0 {
				bad("kernel's TSval %d less TSOffset %d is clock %d, outside the recorded [%d, %d]",
					k.TS[0], reply.TSOffset, clock, lo, hi)
			}
		}
	default:
		bad("verdict %s, kernel sent %s", reply.Verdict, k.Flags)
	}
	return diffs
}

func TestProcessAgreesWithKernel(t *testing.T) {
	files := []string{filepath.Join("..", "testdata", "kernel", "timewait-segments.jsonl")}
	if extra := os.Getenv("SOCKTABLE_TWSEG_CORPUS"); extra != "" {
		files = append(files, strings.Split(extra, ":")...)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases := readTWCorpus(t, path)
			probes := 0
			for i := range cases {
				c := &cases[i]
				probes += len(c.Probes)
				t.Run(c.ID, func(t *testing.T) {
					if diffs := replayTW(t, c); len(diffs) > 0 {
						t.Errorf("%d disagreements with the kernel:\n%s", len(diffs), strings.Join(diffs, "\n"))
					}
				})
			}
			t.Logf("%s: %d cases, %d probes, kernel %s", path, len(cases), probes, cases[0].Kernel)
		})
	}
}
