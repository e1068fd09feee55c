package timewait

import (
	"strconv"
	"time"

	"github.com/socktable/socktable/tuple"
)

// This file holds the pure decision logic of a TIME_WAIT entry: Linux's
// tcp_timewait_state_process (net/ipv4/tcp_minisocks.c) with the PAWS test
// it calls (tcp_paws_reject, include/net/tcp.h) and the out-of-window ACK
// rate limit (tcp_oow_rate_limited, net/ipv4/tcp_input.c), transcribed from
// the kernel as of 6.18. It touches no table and no timer: it reads a
// record and a segment, updates the record in place, and says what the
// caller must send and do with the entry's timer.

// TimeWaitLen is how long a TIME_WAIT entry lives after the last segment
// that restarted its timer: Linux's TCP_TIMEWAIT_LEN, a fixed 60 s (RFC
// 9293's 2×MSL would be 4 minutes; Linux has never followed it, since the
// wait only has to outlast the peer's FIN retransmissions).
const TimeWaitLen = 60 * time.Second

// DefaultInvalidRateLimit is Linux's default net.ipv4.tcp_invalid_ratelimit:
// at most one ACK per 500 ms answers out-of-window segments on one entry.
const DefaultInvalidRateLimit = 500 * time.Millisecond

const (
	// pawsWrap is TCP_PAWS_WRAP (INT_MAX / USEC_PER_SEC seconds): a
	// ts_recent older than this is too old to judge by, since a peer
	// clocking timestamps in microseconds wraps half the 32-bit space in
	// that time. Linux 6.7 lowered it from TCP_PAWS_24DAYS, which assumed a
	// 1 kHz peer clock.
	pawsWrap = 2147 * time.Second
	// pawsMSL is TCP_PAWS_MSL: an RST is exempt from PAWS once ts_recent is
	// this old, so a peer that rebooted (and reset its timestamp clock) can
	// still reset a half-open connection.
	pawsMSL = 60 * time.Second
	// isnGap is what Linux adds to the old snd_nxt to choose the ISN of a
	// connection that replaces a TIME_WAIT entry (tw_snd_nxt + 65535 + 2):
	// beyond anything the old incarnation sent, even with a full unscaled
	// window of data in flight, as RFC 1122 4.2.2.13 asks.
	isnGap = 65535 + 2
	// maxWScale is TCP_MAX_WSCALE (RFC 7323 section 2.3).
	maxWScale = 14
)

// Substate says which closing state a TIME_WAIT entry models. Linux keeps
// both in one mini-socket (inet_timewait_sock.tw_substate) because both are
// connections whose owner has gone and which only answer the peer.
type Substate uint8

const (
	// TimeWait is the true TIME_WAIT state: both FINs have been sent and
	// acknowledged (or ours acknowledged and the peer's received), and the
	// entry waits TimeWaitLen for stray segments. It is the zero Substate.
	TimeWait Substate = iota
	// FinWait2 is an orphaned FIN_WAIT2: the application closed, our FIN
	// was acknowledged, and the peer's FIN has not arrived. Linux hands
	// such a socket to a mini-socket for what remains of its
	// tcp_fin_timeout (at least 3.5 RTOs; the caller schedules that), and
	// the peer's FIN turns it into TimeWait with a fresh TimeWaitLen.
	FinWait2
)

// String returns "TIME_WAIT", "FIN_WAIT2", or the number of an unknown
// value (which the rules treat as TimeWait).
func (s Substate) String() string {
	switch s {
	case TimeWait:
		return "TIME_WAIT"
	case FinWait2:
		return "FIN_WAIT2"
	}
	return "Substate(" + strconv.Itoa(int(s)) + ")"
}

// State is what a closing connection hands over to its TIME_WAIT entry:
// the fields of Linux's tcp_timewait_sock that tcp_time_wait copies from
// the full socket, less those this package has no use for (the MD5 or AO
// key, the mark, the traffic class: the stack that sends the replies keeps
// them if it needs them).
type State struct {
	// Substate is the state the connection closes in: TimeWait or
	// FinWait2. Any other value is taken as TimeWait.
	Substate Substate
	// RcvNxt is the next sequence number expected from the peer (one past
	// its FIN in TimeWait).
	RcvNxt uint32
	// SndNxt is the next sequence number this side would send (one past
	// our FIN). The ISN of a connection replacing the entry derives from it.
	SndNxt uint32
	// RcvWnd is the receive window last advertised, in bytes, not scaled
	// (Linux's tcp_receive_window). The FinWait2 rules accept a segment
	// only if it falls within RcvNxt..RcvNxt+RcvWnd; the ACKs the entry
	// sends advertise it shifted right by RcvWScale.
	RcvWnd uint32
	// RcvWScale is the window scale shift this side announced (0 to 14;
	// larger values are taken as 14).
	RcvWScale uint8
	// HasTimestamps reports that the connection uses TCP timestamps (RFC
	// 7323) and has recorded one from the peer, so TSRecent and
	// TSRecentStamp are meaningful. Without it the entry applies no PAWS
	// test, ignores arriving timestamps and cannot be reused by
	// tcp_tw_reuse. (Linux encodes this as ts_recent_stamp != 0; a flag
	// keeps the time 0 usable, which is where the package's clocks start.)
	HasTimestamps bool
	// TSRecent is the last timestamp value accepted from the peer
	// (ts_recent), echoed in our ACKs and the reference for PAWS.
	TSRecent uint32
	// TSRecentStamp is when TSRecent was recorded: a time on the clock of
	// the table the entry goes into (its Clock's Now, the stack's one
	// Clock). Linux keeps seconds; the table keeps milliseconds (see
	// Table), so its thresholds are applied to the millisecond.
	TSRecentStamp time.Duration
	// TSOffset is this connection's offset added to the local timestamp
	// clock to form the TSval of the segments it sends (tw_ts_offset, the
	// per-connection random offset of RFC 7323 section 7.1).
	TSOffset uint32
}

// recordFlags are the record's booleans, packed in a byte.
type recordFlags uint8

const (
	// recTimestamps: the connection uses timestamps (State.HasTimestamps).
	recTimestamps recordFlags = 1 << iota
	// recOOWAcked: lastOOWAck holds the time of an ACK already sent to an
	// out-of-window segment (Linux's tw_last_oow_ack_time != 0).
	recOOWAcked
)

// record is the per-entry state the table stores: State compacted, plus the
// two times the rules keep. It has no pointers, so the garbage collector
// never scans a slab of them, and it is 48 bytes, so that a record and its
// wheel Timer fit in 64 bytes.
type record struct {
	// tsRecentStamp is State.TSRecentStamp, updated when a timestamp is
	// accepted.
	tsRecentStamp time.Duration
	// entryStamp is when the entry entered TIME_WAIT (Linux's
	// tw_entry_stamp): set when the entry is made, and again when a
	// FinWait2 entry receives the peer's FIN with a timestamp. tcp_tw_reuse
	// waits ReuseDelay from it.
	entryStamp time.Duration
	// lastOOWAck is when the last rate-limited ACK was sent
	// (tw_last_oow_ack_time), valid with recOOWAcked.
	lastOOWAck time.Duration

	rcvNxt, sndNxt, rcvWnd uint32
	tsRecent, tsOffset     uint32

	substate  Substate
	flags     recordFlags
	rcvWScale uint8
}

// newRecord builds the record of an entry made at now (on the table's
// clock) from the State its connection handed over. Out-of-range values are
// normalised rather than refused: an unknown Substate becomes TimeWait, a
// window scale above 14 becomes 14, and the timestamp fields are zeroed
// when HasTimestamps is false, so a record never holds a value the rules
// would misread.
func newRecord(s *State, now time.Duration) record {
	r := record{
		entryStamp: now,
		rcvNxt:     s.RcvNxt,
		sndNxt:     s.SndNxt,
		rcvWnd:     s.RcvWnd,
		tsOffset:   s.TSOffset,
		rcvWScale:  min(s.RcvWScale, maxWScale),
	}
	if s.Substate == FinWait2 {
		r.substate = FinWait2
	}
	if s.HasTimestamps {
		r.flags |= recTimestamps
		r.tsRecent = s.TSRecent
		r.tsRecentStamp = s.TSRecentStamp
	}
	return r
}

// Verdict is what the entry answers to a segment: Linux's enum
// tcp_tw_status.
type Verdict uint8

const (
	// VerdictDrop (TCP_TW_SUCCESS): drop the segment silently. The segment
	// may still have changed the entry or its timer.
	VerdictDrop Verdict = iota
	// VerdictACK (TCP_TW_ACK, TCP_TW_ACK_OOW): send an ACK built from the
	// entry (record.ack). Linux 6.15 tells the two apart, only to clear
	// the ECN bits of the TOS on ACKs to out-of-window segments; this
	// package does not model TOS.
	VerdictACK
	// VerdictRST (TCP_TW_RST): send a reset in answer to the segment (as
	// for a segment that matched no socket: tcp_v4_send_reset). The entry
	// is removed, as tcp_v4_rcv does: Table.Process has done it (Reply.Fate
	// is FateRemoved) and returned the entry's owner.
	VerdictRST
	// VerdictNewSYN (TCP_TW_SYN): the segment is a SYN that may open a new
	// incarnation of the connection; the entry is kept. The caller looks
	// up a listener: if there is one it hands the SYN to the listener,
	// which uses the returned ISN for its SYN-ACK, inserting the new
	// request with Table.Replace, which removes the entry in the same
	// step; if there is none it sends an ACK, as for VerdictACK, and the
	// entry stays.
	VerdictNewSYN
)

// String returns the verdict's name ("drop", "ack", "rst", "new-syn") or
// its number.
func (v Verdict) String() string {
	switch v {
	case VerdictDrop:
		return "drop"
	case VerdictACK:
		return "ack"
	case VerdictRST:
		return "rst"
	case VerdictNewSYN:
		return "new-syn"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// action is what the table must do with the entry's timer after process.
// (Linux never restarts a FIN_WAIT2 timer from a segment: a FIN_WAIT2
// entry either keeps its timeout, dies, or becomes TIME_WAIT with a fresh
// TimeWaitLen, so there is no action for a FIN_WAIT2 restart.)
type action uint8

const (
	// keepTimer: leave the timer as it is.
	keepTimer action = iota
	// restartTimer: reschedule the timer TimeWaitLen from now
	// (inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)).
	restartTimer
	// killEntry: cancel the timer and remove the entry
	// (inet_twsk_deschedule_put).
	killEntry
)

// String names the action, for test failures.
func (a action) String() string {
	switch a {
	case keepTimer:
		return "keep"
	case restartTimer:
		return "restart"
	case killEntry:
		return "kill"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Rules are the sysctls that change how an entry answers segments. The
// zero Rules is Linux's default behaviour except for the ACK rate limit,
// which it turns off; DefaultRules returns Linux's defaults.
type Rules struct {
	// RFC1337 is net.ipv4.tcp_rfc1337. False (Linux's default): an RST at
	// exactly RcvNxt kills a TimeWait entry, as RFC 9293 says, at the risk
	// RFC 1337 calls TIME-WAIT assassination. True: such an RST is ignored
	// (its timestamp is still recorded) and the entry lives out its timer,
	// which is not restarted (older kernels restarted it, so a stream of
	// resets held the tuple indefinitely).
	RFC1337 bool
	// InvalidRateLimit is net.ipv4.tcp_invalid_ratelimit: the least time
	// between two ACKs that answer out-of-window segments (or PAWS-rejected
	// ones) on one entry, so that two stacks that disagree about a
	// connection cannot loop ACKs at line rate. Segments that carry data
	// and no SYN are always answered, since they cannot be part of such a
	// loop. 0 disables the limit, as it does in Linux.
	InvalidRateLimit time.Duration
}

// DefaultRules returns Linux's defaults: tcp_rfc1337=0 and
// tcp_invalid_ratelimit=500 ms.
func DefaultRules() Rules {
	return Rules{InvalidRateLimit: DefaultInvalidRateLimit}
}

// seqBefore reports whether sequence number a comes before b in the
// circular 32-bit space (Linux's before(): the signed difference, so it is
// right across wraparound for numbers less than 2^31 apart).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// seqAfter reports whether a comes after b (Linux's after()).
func seqAfter(a, b uint32) bool { return seqBefore(b, a) }

// arrival is a segment as the rules see it, with the values derived once.
type arrival struct {
	seq, end uint32 // end is seq + payload + SYN + FIN (TCP_SKB_CB end_seq)
	tsval    uint32
	flags    tuple.Flags
	sawTS    bool // a timestamp to judge by: the segment has one and so does the entry
	paws     bool // PAWS rejects the segment
}

func (r *record) arrive(seg *tuple.Segment, now time.Duration) arrival {
	a := arrival{
		seq:   seg.Seq,
		end:   seg.Seq + uint32(seg.PayloadLen),
		tsval: seg.TSval,
		flags: seg.Flags,
		// Linux parses the options only when the entry has a ts_recent.
		sawTS: seg.HasTimestamps && r.flags&recTimestamps != 0,
	}
	if a.flags.Has(tuple.SYN) {
		a.end++
	}
	if a.flags.Has(tuple.FIN) {
		a.end++
	}
	if a.sawTS {
		a.paws = r.pawsRejects(a.tsval, a.flags.Has(tuple.RST), now)
	}
	return a
}

// pawsRejects is tcp_paws_reject with a window of 0: a timestamp older than
// ts_recent marks an old duplicate, unless ts_recent is too old to judge by
// (pawsWrap), is 0 (some stacks send TSval 0 on the handshake), or the
// segment is an RST and ts_recent is older than pawsMSL. Ages are compared
// by signed difference, as the kernel's time_before32 does, so a clock
// that stepped back reads as no time elapsed.
func (r *record) pawsRejects(tsval uint32, rst bool, now time.Duration) bool {
	if int32(r.tsRecent-tsval) <= 0 {
		return false
	}
	age := now - r.tsRecentStamp
	if age >= pawsWrap || r.tsRecent == 0 {
		return false
	}
	return !rst || age < pawsMSL
}

// recordTimestamp stores an accepted timestamp as ts_recent.
func (r *record) recordTimestamp(tsval uint32, now time.Duration) {
	r.tsRecent = tsval
	r.tsRecentStamp = now
}

// process applies an arriving segment to the entry, as Linux's
// tcp_timewait_state_process does, and returns what to send (v), what to do
// with the entry's timer (act) and, for VerdictNewSYN only, the ISN a new
// connection must use (isn; 0 otherwise). It updates the record in place:
// ts_recent when a timestamp is accepted, the rate limiter's clock when an
// ACK to an out-of-window segment is allowed, and rcv_nxt, the substate
// and the entry time when a FinWait2 entry receives the peer's FIN. now is
// the time on the table's clock.
//
// It allocates nothing and never panics: any record and any segment give a
// verdict. A nil record or segment, an ICMP error and a non-TCP segment
// give VerdictDrop and keepTimer (Linux ignores ICMP errors for TIME_WAIT
// sockets, tcp_v4_err); nil rules mean the zero Rules.
//
// The caller has already matched the segment to the entry by four-tuple
// and checked its checksum, as tcp_v4_rcv does before calling
// tcp_timewait_state_process; TCP options other than timestamps play no
// part (Linux honours arriving timestamps only with net.ipv4.tcp_timestamps
// on, its default, which this assumes).
func (r *record) process(seg *tuple.Segment, now time.Duration, rules *Rules) (v Verdict, act action, isn uint32) {
	if r == nil || seg == nil || seg.Proto != tuple.ProtoTCP || seg.IsICMPError() {
		return VerdictDrop, keepTimer, 0
	}
	var opts Rules
	if rules != nil {
		opts = *rules
	}
	a := r.arrive(seg, now)
	if r.substate == FinWait2 {
		v, act = r.finWait2(&a, now, &opts)
		return v, act, 0
	}
	return r.timeWait(&a, now, &opts)
}

// finWait2 repeats, for an orphaned FIN_WAIT2, the checks the full socket
// would make in tcp_rcv_state_process, in the kernel's order.
func (r *record) finWait2(a *arrival, now time.Duration, rules *Rules) (Verdict, action) {
	// Old duplicate or outside the window: answer with an ACK so that a
	// confused peer resynchronises, rate-limited.
	if a.paws || !inWindow(a.seq, a.end, r.rcvNxt, r.rcvNxt+r.rcvWnd) {
		return r.outOfWindowACK(a, now, rules.InvalidRateLimit), keepTimer
	}
	switch {
	case a.flags.Has(tuple.RST):
		// An acceptable reset ends the connection (RFC 1337 protects only
		// TIME_WAIT).
		return VerdictDrop, killEntry
	case a.flags.Has(tuple.SYN) && !seqBefore(a.seq, r.rcvNxt):
		// A SYN within the window of a synchronised connection is an
		// error (RFC 9293 3.10.7.4): reset.
		return VerdictRST, killEntry
	case !a.flags.Has(tuple.ACK) || !seqAfter(a.end, r.rcvNxt) || a.end == a.seq:
		// Without ACK, or nothing new (a duplicate ACK, a segment wholly
		// before rcv_nxt): ignore.
		return VerdictDrop, keepTimer
	case !a.flags.Has(tuple.FIN) || a.end != r.rcvNxt+1:
		// New data after we closed: no one will ever read it, so reset.
		return VerdictRST, killEntry
	}
	// The peer's FIN, and nothing else, at rcv_nxt: enter true TIME_WAIT.
	r.substate = TimeWait
	r.rcvNxt = a.end
	if a.sawTS {
		r.entryStamp = now
		r.recordTimestamp(a.tsval, now)
	}
	return VerdictACK, restartTimer
}

// inWindow is tcp_minisocks.c's tcp_in_window: whether the segment
// seq..end overlaps the window s..e, where a segment starting exactly at s
// always does and an empty one at e does too.
func inWindow(seq, end, s, e uint32) bool {
	if seq == s {
		return true
	}
	if seqAfter(end, s) && seqBefore(seq, e) {
		return true
	}
	return seq == e && seq == end
}

// timeWait is the true TIME_WAIT half of tcp_timewait_state_process.
func (r *record) timeWait(a *arrival, now time.Duration, rules *Rules) (Verdict, action, uint32) {
	rst := a.flags.Has(tuple.RST)
	// In window, which in TIME_WAIT can only be a bare ACK or an RST at
	// exactly rcv_nxt.
	if !a.paws && a.seq == r.rcvNxt && (a.seq == a.end || rst) {
		act := restartTimer
		if rst {
			if !rules.RFC1337 {
				return VerdictDrop, killEntry, 0
			}
			act = keepTimer
		}
		if a.sawTS {
			r.recordTimestamp(a.tsval, now)
		}
		return VerdictDrop, act, 0
	}
	// A new SYN may reopen the connection (RFC 1122 4.2.2.13) if it cannot
	// be an old duplicate: its sequence number is beyond the old
	// connection's, or its timestamp is newer than ts_recent (RFC 6191).
	if a.flags&(tuple.SYN|tuple.RST|tuple.ACK) == tuple.SYN && !a.paws &&
		(seqAfter(a.seq, r.rcvNxt) || (a.sawTS && int32(r.tsRecent-a.tsval) < 0)) {
		return VerdictNewSYN, keepTimer, r.nextISN()
	}
	if rst {
		return VerdictDrop, keepTimer, 0
	}
	// Anything else (a retransmitted FIN, an old ACK, data) is answered
	// with an ACK and holds the entry for another TimeWaitLen, except an
	// ACK-less SYN with a valid timestamp: it may be a new connection's SYN
	// with a random ISN below rcv_nxt, and restarting the timer on it would
	// keep that connection out for good.
	act := keepTimer
	if a.paws || a.flags.Has(tuple.ACK) {
		act = restartTimer
	}
	return r.outOfWindowACK(a, now, rules.InvalidRateLimit), act, 0
}

// outOfWindowACK is tcp_timewait_check_oow_rate_limit: VerdictACK unless
// an ACK to an out-of-window segment went out less than limit ago. Only
// segments without data, or with SYN, are limited (tcp_oow_rate_limited).
func (r *record) outOfWindowACK(a *arrival, now time.Duration, limit time.Duration) Verdict {
	if a.seq != a.end && !a.flags.Has(tuple.SYN) {
		return VerdictACK
	}
	if r.flags&recOOWAcked != 0 {
		if elapsed := now - r.lastOOWAck; elapsed >= 0 && elapsed < limit {
			return VerdictDrop
		}
	}
	r.lastOOWAck = now
	r.flags |= recOOWAcked
	return VerdictACK
}

// nextISN is the initial sequence number for a connection that replaces
// the entry: tw_snd_nxt + 65537, never 0 (Linux keeps 0 to mean "not
// chosen yet").
func (r *record) nextISN() uint32 {
	isn := r.sndNxt + isnGap
	if isn == 0 {
		isn = 1
	}
	return isn
}

// ackFields are the header fields of the ACK an entry sends
// (tcp_v4_timewait_ack).
type ackFields struct {
	seq, ack uint32
	// window is RcvWnd >> RcvWScale, clamped to 16 bits (Linux truncates;
	// the two agree for any window the connection could have advertised).
	window uint16
	// timestamps says whether to add a timestamp option: Linux adds one
	// when ts_recent is non-zero. Its TSval is the local timestamp clock
	// plus tsOffset; its TSecr is tsEcr.
	timestamps bool
	tsOffset   uint32
	tsEcr      uint32
}

// ack returns the fields of the ACK the entry sends now.
func (r *record) ack() ackFields {
	return ackFields{
		seq:        r.sndNxt,
		ack:        r.rcvNxt,
		window:     uint16(min(r.rcvWnd>>r.rcvWScale, 0xffff)),
		timestamps: r.tsRecent != 0,
		tsOffset:   r.tsOffset,
		tsEcr:      r.tsRecent,
	}
}
