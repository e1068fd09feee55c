package socktable

import (
	"unsafe"

	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// Deliver demultiplexes one parsed segment, in Linux's order (see the
// package documentation): it hashes the flow once, then asks the
// established table (a connection, or a request entry of the SYN queue),
// the TIME_WAIT table and the listener index, and says what the stack
// does with the segment (Result). It answers on the stack's behalf
// where the socket table is the whole answer: SYN-ACKs (from the SYN
// queue or as SYN cookies), TIME_WAIT's ACKs and RSTs, the RST for a
// segment no socket owns (RFC 9293 section 3.10.7.1), and it moves
// requests through the handshake. An ICMP or ICMPv6 error reaches the
// connection of the flow it quotes (Outcome ToConn), or removes a request
// entry whose SYN-ACK a hard error quotes.
//
// device is the receiving interface (for SO_BINDTODEVICE listeners),
// shard the receiving shard (core or receive queue), which a connection
// completed on this segment is queued on for accept (a negative shard:
// the one the flow hash steers to); it also picks the stripe of the
// counters Deliver bumps, so goroutines that deliver side by side should
// pass their own shards (or -1: the stripe of the goroutine's P), not
// one shared number, whose counter line they would then contend for.
//
// Deliver is safe for concurrent use and allocates nothing (once the
// established table is sized and the request slab warm). On an
// established connection it is lock-free; on other paths it may block
// briefly on a request's, a TIME_WAIT shard's or a table group's lock.
func (d *Demux[C]) Deliver(seg *tuple.Segment, device, shard int) (res Result[C]) {
	if seg.Proto != tuple.ProtoTCP || seg.ICMP.Kind != tuple.ICMPNone {
		d.deliverOther(seg, &res)
		d.count(&res, shard)
		return res
	}
	t := &seg.Tuple
	h := d.hasher.Hash(*t)
	p, k, ok := d.established.LookupHashedKind(h, *t)
	if ok && k == table.KindConn {
		res.Outcome, res.Reason, res.Conn = ToConn, ReasonEstablished, (*C)(p)
		d.stats.addAt(shard, cDelivered, 1)
		return res
	}
	d.deliverSlow(seg, h, p, k, ok, device, shard, &res)
	d.count(&res, shard)
	return res
}

// count bumps the outcome counters for res.
func (d *Demux[C]) count(res *Result[C], shard int) {
	c := cDropped
	switch {
	case res.Outcome == ToConn || res.Outcome == Completed:
		c = cDelivered
	case res.Reply.Flags&tuple.RST != 0:
		c = cResets
	case res.Reply.Flags != 0:
		c = cAnswered
	}
	d.stats.addAt(shard, c, 1)
}

// deliverSlow is Deliver past an established miss, or a request hit (p,
// k, ok are the established lookup's answer).
func (d *Demux[C]) deliverSlow(seg *tuple.Segment, h uint64, p unsafe.Pointer, k table.Kind, ok bool, device, shard int, res *Result[C]) {
	if d.closed.Load() {
		res.Reason = ReasonClosed
		return
	}
	t := seg.Tuple
	// A request found but reused for another flow before we locked it, or
	// a request insert that lost to another segment's, means the flow's
	// entry changed under us: look again. Each retry follows a change
	// another call made (lock-free progress).
	for {
		if ok {
			if k == table.KindConn {
				res.Outcome, res.Reason, res.Conn = ToConn, ReasonEstablished, (*C)(p)
				return
			}
			if d.toRequest(seg, h, (*request[C])(p), shard, res) {
				return
			}
		} else if d.afterEstablishedMiss(seg, h, device, shard, res) {
			return
		}
		*res = Result[C]{}
		p, k, ok = d.established.LookupHashedKind(h, t)
	}
}

// afterEstablishedMiss asks the TIME_WAIT table and the listener index.
// It returns false if the flow's established entry must be looked up
// again.
func (d *Demux[C]) afterEstablishedMiss(seg *tuple.Segment, h uint64, device, shard int, res *Result[C]) bool {
	t := seg.Tuple
	// Most flows have no TIME_WAIT entry: Process says so with a
	// lock-free probe before it takes the entry's lock.
	if rep, owner, ok := d.timeWait.ProcessHashed(h, t, seg); ok {
		return d.fromTimeWait(seg, h, rep, owner, device, shard, res)
	}
	if hl, ok := d.listeners.LookupHashed(h, t.Local, t.Remote, device); ok {
		return d.toListener(seg, h, hl.Value(), shard, res)
	}
	// No socket. A SYN a listener took from a TIME_WAIT entry (Replace)
	// may have entered its request between our two lookups: only an RST
	// is at stake, so look once more before sending one.
	if _, ok := d.established.LookupHashed(h, t); ok {
		return false
	}
	res.Reason = ReasonNoSocket
	d.reset(seg, res)
	return true
}

// fromTimeWait turns the TIME_WAIT table's answer into a Result; a SYN it
// accepts as new goes to a listener, which takes the tuple over.
func (d *Demux[C]) fromTimeWait(seg *tuple.Segment, h uint64, rep timewait.Reply, owner *table.Binding, device, shard int, res *Result[C]) bool {
	if rep.Fate == timewait.FateRemoved {
		d.stats.add(cTWKilled, 1)
		_ = d.ports.Release(owner)
	}
	res.Reason = ReasonTimeWait
	switch rep.Verdict {
	case timewait.VerdictDrop:
	case timewait.VerdictRST:
		d.reset(seg, res)
	case timewait.VerdictNewSYN:
		t := seg.Tuple
		if hl, ok := d.listeners.LookupHashed(h, t.Local, t.Remote, device); ok {
			return d.syn(seg, h, hl.Value(), rep.ISN, res)
		}
		fallthrough // no listener: Linux answers with the TIME_WAIT ACK
	case timewait.VerdictACK:
		res.Outcome = Send
		res.Reply = Reply{Flags: tuple.ACK, Seq: rep.Seq, Ack: rep.Ack, Window: rep.Window,
			Timestamps: rep.Timestamps, TSval: d.TSClock() + rep.TSOffset, TSecr: rep.TSEcr}
	}
	return true
}

// reset fills res with the RST RFC 9293 section 3.10.7.1 answers seg
// with, or nothing for an RST.
func (d *Demux[C]) reset(seg *tuple.Segment, res *Result[C]) {
	switch {
	case seg.Flags&tuple.RST != 0:
		res.Outcome = Dropped
	case seg.Flags&tuple.ACK != 0:
		res.Outcome, res.Reply = Send, Reply{Flags: tuple.RST, Seq: seg.Ack}
	default:
		res.Outcome, res.Reply = Send, Reply{Flags: tuple.RST | tuple.ACK, Ack: seg.Seq + segLen(seg)}
	}
}

// segLen is SEG.LEN: the payload plus one for SYN and one for FIN.
func segLen(seg *tuple.Segment) uint32 {
	n := uint32(seg.PayloadLen)
	if seg.Flags&tuple.SYN != 0 {
		n++
	}
	if seg.Flags&tuple.FIN != 0 {
		n++
	}
	return n
}

// toListener handles a segment that reached listener l (Linux's
// tcp_rcv_state_process in LISTEN, with tcp_v4_cookie_check before it).
func (d *Demux[C]) toListener(seg *tuple.Segment, h uint64, l *Listener[C], shard int, res *Result[C]) bool {
	f := seg.Flags
	switch {
	case f&tuple.RST != 0:
		res.Reason = ReasonListenerIgnored
	case f&tuple.ACK != 0:
		if f&tuple.SYN == 0 && d.cookies != SynCookiesOff {
			if now := d.clock.Now(); l.recentCookies(now) {
				return d.cookieACK(seg, h, l, shard, res)
			}
		}
		// An ACK with no request or cookie behind it: first make sure a
		// request did not arrive between the lookups (see
		// afterEstablishedMiss).
		if _, ok := d.established.LookupHashed(h, seg.Tuple); ok {
			return false
		}
		res.Reason = ReasonListenerRST
		d.reset(seg, res)
	case f&tuple.SYN != 0 && f&tuple.FIN == 0:
		return d.syn(seg, h, l, 0, res)
	default:
		res.Reason = ReasonListenerIgnored
	}
	return true
}

// syn handles a SYN to listener l (Linux's tcp_conn_request): a request
// entry and its SYN-ACK, or a SYN cookie, or a drop. isn is nonzero for a
// SYN that takes a TIME_WAIT tuple over, whose ISN TIME_WAIT chose; such
// a SYN never gets a cookie and is not held to the SYN queue's limit
// (Linux's !isn tests), and its request replaces the TIME_WAIT entry in
// one step.
func (d *Demux[C]) syn(seg *tuple.Segment, h uint64, l *Listener[C], isn uint32, res *Result[C]) bool {
	res.Listener = l
	cookie := false
	if isn == 0 && (d.cookies == SynCookiesAlways || l.synQueueFull()) {
		if d.cookies == SynCookiesOff {
			d.stats.add(cReqQFullDrop, 1)
			d.stats.add(cListenDrops, 1)
			res.Reason = ReasonSynQueueFull
			return true
		}
		if d.cookies != SynCookiesAlways || l.synQueueFull() {
			d.stats.add(cReqQFullDoCookies, 1)
		}
		cookie = true
	}
	if l.acceptFull() {
		d.stats.add(cListenOverflows, 1)
		d.stats.add(cListenDrops, 1)
		res.Reason = ReasonListenOverflow
		return true
	}
	t := seg.Tuple
	if cookie {
		d.sendCookie(seg, l, res)
		return true
	}
	if isn == 0 && d.cookies == SynCookiesOff &&
		d.maxSynBacklog-int(l.qlen.Load()) < d.maxSynBacklog>>2 {
		d.stats.add(cListenDrops, 1)
		res.Reason = ReasonSynQueueFull
		return true
	}
	now := d.clock.Now()
	r := d.requests.get()
	r.live = true
	r.tuple, r.hash, r.listener = t, h, l
	r.irs = seg.Seq
	if isn != 0 {
		r.iss = isn
	} else {
		r.iss = d.jar.ISN(t, now)
	}
	r.mss = peerMSS(seg)
	r.hasWS, r.wscale = seg.HasWScale, min(seg.WScale, tuple.MaxWindowScale)
	r.sack, r.ts = seg.SACKPermitted, seg.HasTimestamps
	r.tsRecent, r.tsOffset = seg.TSval, 0
	if r.ts { // only a connection with timestamps has an offset (Linux's init_ts_off)
		r.tsOffset = d.jar.TSOffset(t)
	}
	r.acked, r.timeouts = false, 0
	var err error
	r.timer, err = d.timers.Schedule(now+synAckTimeoutInit, timerData(r.index, r.gen))
	if err == nil {
		if isn != 0 {
			var owner *table.Binding
			var replaced bool
			owner, replaced, err = d.timeWait.ReplaceHashed(h, t, func() error {
				return d.established.InsertHashedKind(h, t, unsafe.Pointer(r), table.KindRequest)
			})
			if replaced {
				d.stats.add(cTWKilled, 1)
				_ = d.ports.Release(owner)
			}
		} else {
			err = d.established.InsertHashedKind(h, t, unsafe.Pointer(r), table.KindRequest)
		}
		if err != nil {
			d.timers.Cancel(r.timer)
		}
	}
	if err != nil {
		r.live = false
		r.gen++
		r.mu.Unlock()
		d.requests.put(r)
		if err == ErrExists { // another segment made the flow's entry first
			*res = Result[C]{}
			return false
		}
		d.stats.add(cListenDrops, 1)
		res.Reason = ReasonTableFull
		return true
	}
	l.qlen.Add(1)
	l.young.Add(1)
	res.Outcome, res.Reason = Send, ReasonSynQueued
	res.Reply = r.synAckLocked(d.TSClock())
	r.mu.Unlock()
	return true
}

// peerMSS is the MSS a SYN offers, or the family's default without the
// option (RFC 9293 section 3.7.1: 536 for IPv4, 1220 for IPv6).
func peerMSS(seg *tuple.Segment) uint16 {
	switch {
	case seg.HasMSS:
		return seg.MSS
	case seg.Tuple.Is4():
		return 536
	}
	return 1220
}

// synAckLocked is the request's SYN-ACK, with the timestamp clock at
// tsNow.
func (r *request[C]) synAckLocked(tsNow uint32) Reply {
	l := r.listener
	rep := Reply{Flags: tuple.SYN | tuple.ACK, Seq: r.iss, Ack: r.irs + 1, Window: l.window, MSS: l.mss(r.tuple),
		HasWScale: r.hasWS, SACKPermitted: r.sack}
	if r.hasWS {
		rep.WScale = l.wscale
	}
	if r.ts {
		rep.Timestamps, rep.TSval, rep.TSecr = true, tsNow+r.tsOffset, r.tsRecent
	}
	return rep
}

// sendCookie answers a SYN with a SYN cookie (cookie_v4_init_sequence):
// the ISN encodes the flow, the time and the MSS, and with timestamps the
// TSval's low bits carry the window scale, SACK and ECN the cookie
// cannot. Without timestamps those options are not offered, as in Linux.
func (d *Demux[C]) sendCookie(seg *tuple.Segment, l *Listener[C], res *Result[C]) {
	now := d.clock.Now()
	t := seg.Tuple
	iss, _ := d.jar.Cookie(t, seg.Seq, peerMSS(seg), now)
	l.noteCookie(now)
	d.stats.add(cCookiesSent, 1)
	rep := Reply{Flags: tuple.SYN | tuple.ACK, Seq: iss, Ack: seg.Seq + 1, Window: l.window, MSS: l.mss(t)}
	if seg.HasTimestamps {
		opts := syncookie.Options{HasWScale: seg.HasWScale, WScale: min(seg.WScale, tuple.MaxWindowScale),
			SACK: seg.SACKPermitted}
		rep.HasWScale, rep.SACKPermitted = seg.HasWScale, seg.SACKPermitted
		if seg.HasWScale {
			rep.WScale = l.wscale
		}
		rep.Timestamps = true
		// The options go in the clock's low bits before the flow's offset
		// is added (cookie_init_timestamp, then ts_off): the check takes
		// the offset off the echoed TSecr to find them.
		rep.TSval = syncookie.EncodeTS(d.TSClock(), opts) + d.jar.TSOffset(t)
		rep.TSecr = seg.TSval
	}
	res.Outcome, res.Reason, res.Reply = Send, ReasonSynCookie, rep
}

// cookieACK checks the cookie an ACK to listener l returns
// (cookie_v4_check): a valid one makes a Handshake, an invalid one an RST.
func (d *Demux[C]) cookieACK(seg *tuple.Segment, h uint64, l *Listener[C], shard int, res *Result[C]) bool {
	t := seg.Tuple
	res.Listener = l
	mss, ok := d.jar.Check(t, seg.Seq-1, seg.Ack-1, d.clock.Now())
	var opts syncookie.Options
	tsOff := d.jar.TSOffset(t)
	if ok && seg.HasTimestamps && seg.TSecr != 0 {
		opts = syncookie.DecodeTS(seg.TSecr - tsOff)
	}
	if !ok {
		// A request may have entered meanwhile (see afterEstablishedMiss).
		if _, found := d.established.LookupHashed(h, t); found {
			*res = Result[C]{}
			return false
		}
		d.stats.add(cCookiesFailed, 1)
		res.Reason = ReasonBadCookie
		d.reset(seg, res)
		return true
	}
	d.stats.add(cCookiesRecv, 1)
	if l.acceptFull() {
		d.stats.add(cListenOverflows, 1)
		d.stats.add(cListenDrops, 1)
		res.Reason = ReasonListenOverflow
		return true
	}
	hs := &res.Handshake
	hs.Tuple, hs.ISS, hs.IRS, hs.MSS = t, seg.Ack-1, seg.Seq-1, mss
	if seg.HasTimestamps && seg.TSecr != 0 {
		hs.HasWScale, hs.WScale, hs.SACKPermitted = opts.HasWScale, opts.WScale, opts.SACK
		hs.Timestamps, hs.TSRecent, hs.TSOffset = true, seg.TSval, tsOff
	}
	hs.Cookie, hs.Listener, hs.hash, hs.shard = true, l, h, d.steer(l, h, shard)
	res.Outcome, res.Reason, res.Listener = Completed, ReasonCookieACK, l
	return true
}

// steer returns the accept shard for a connection completed on shard.
func (d *Demux[C]) steer(l *Listener[C], h uint64, shard int) int {
	if shard < 0 || shard >= l.queue.Shards() {
		return l.queue.Steer(h)
	}
	return shard
}

// liveListenerLocked returns the listener that request r (locked, flow
// hash h) belongs to: its own, or, if that one closed, the SO_REUSEPORT
// member its requests migrate to (tcp_migrate_req; r moves there). With
// none, r is removed, unlocked and freed, and it returns false.
func (d *Demux[C]) liveListenerLocked(r *request[C], h uint64) (*Listener[C], bool) {
	l := r.listener
	if !l.closed.Load() {
		return l, true
	}
	s, ok := l.successor(h)
	if !ok {
		d.removeRequestLocked(r, true)
		r.mu.Unlock()
		d.requests.put(r)
		return nil, false
	}
	r.moveLocked(s)
	return s, true
}

// toRequest handles a segment that reached request r (Linux's
// tcp_check_req). It returns false if r no longer holds the flow.
func (d *Demux[C]) toRequest(seg *tuple.Segment, h uint64, r *request[C], shard int, res *Result[C]) bool {
	r.mu.Lock()
	if !r.live || r.hash != h || r.tuple != seg.Tuple {
		r.mu.Unlock()
		return false
	}
	l, ok := d.liveListenerLocked(r, h)
	if !ok {
		// Linux drops the request and looks the segment up again: with no
		// listener it gets the no-socket RST.
		return false
	}
	res.Reason, res.Listener = ReasonRequest, l
	f := seg.Flags & (tuple.RST | tuple.SYN | tuple.ACK)
	paws := r.ts && seg.HasTimestamps && int32(seg.TSval-r.tsRecent) < 0 && f&tuple.RST == 0
	switch {
	case f == tuple.SYN && seg.Seq == r.irs && !paws:
		// The peer did not get our SYN-ACK: send it again.
		d.stats.add(cSynAckRetrans, 1)
		res.Outcome, res.Reply = Send, r.synAckLocked(d.TSClock())
	case f&tuple.ACK != 0 && seg.Ack != r.iss+1:
		res.Reason = ReasonBadACK
		d.reset(seg, res)
	case paws || !inWindow(seg.Seq, seg.Seq+segLen(seg), r.irs+1, r.irs+1+uint32(l.window)):
		if f&tuple.RST == 0 {
			res.Outcome = Send
			res.Reply = Reply{Flags: tuple.ACK, Seq: r.iss + 1, Ack: r.irs + 1, Window: l.window}
			if r.ts {
				res.Reply.Timestamps, res.Reply.TSval, res.Reply.TSecr = true, d.TSClock()+r.tsOffset, r.tsRecent
			}
		}
	case f&(tuple.RST|tuple.SYN) != 0:
		d.stats.add(cEmbryonicRsts, 1)
		res.Reason = ReasonEmbryonicReset
		d.reset(seg, res)
		d.removeRequestLocked(r, true)
		r.mu.Unlock()
		d.requests.put(r)
		return true
	case f&tuple.ACK == 0:
	case l.acceptFull():
		d.stats.add(cListenOverflows, 1)
		d.stats.add(cListenDrops, 1)
		res.Reason = ReasonListenOverflow
		if !d.abortOnOverflow {
			r.acked = true // the SYN-ACK timer goes on; the peer's ACK comes again
			break
		}
		d.reset(seg, res)
		d.removeRequestLocked(r, true)
		r.mu.Unlock()
		d.requests.put(r)
		return true
	default:
		hs := &res.Handshake
		hs.Tuple, hs.ISS, hs.IRS, hs.MSS = r.tuple, r.iss, r.irs, r.mss
		hs.HasWScale, hs.WScale, hs.SACKPermitted = r.hasWS, r.wscale, r.sack
		if r.ts {
			hs.Timestamps, hs.TSRecent, hs.TSOffset = true, r.tsRecent, r.tsOffset
			if seg.HasTimestamps {
				hs.TSRecent = seg.TSval
			}
		}
		hs.Listener, hs.hash, hs.shard, hs.req, hs.gen = l, h, d.steer(l, h, shard), r, r.gen
		res.Outcome = Completed
	}
	r.mu.Unlock()
	return true
}

// inWindow is Linux's tcp_in_window: whether a segment [seq, end) is
// acceptable to a receive window [lo, hi).
func inWindow(seq, end, lo, hi uint32) bool {
	if seq == lo {
		return true
	}
	if int32(end-lo) > 0 && int32(seq-hi) < 0 {
		return true
	}
	return seq == hi && seq == end
}

// removeRequestLocked takes r out of the established table and its
// listener's counts and frees it; the caller unlocks it, then gives it
// back to the slab (put). cancel stops its timer (not when the timer
// itself is running).
func (d *Demux[C]) removeRequestLocked(r *request[C], cancel bool) {
	d.established.CompareAndDeleteHashed(r.hash, r.tuple, unsafe.Pointer(r))
	r.listener.qlen.Add(-1)
	if r.timeouts == 0 {
		r.listener.young.Add(-1)
	}
	if cancel {
		d.timers.Cancel(r.timer)
	}
	r.live = false
	r.gen++
	r.listener = nil
}

// deliverOther handles what is not a plain TCP segment: ICMP errors about
// TCP flows go to the quoted flow's connection (tcp_v4_err, which looks in
// the established table only); the rest is not ours.
func (d *Demux[C]) deliverOther(seg *tuple.Segment, res *Result[C]) {
	if seg.Proto != tuple.ProtoTCP || !seg.IsICMPError() {
		res.Reason = ReasonNotTCP
		return
	}
	if d.closed.Load() {
		res.Reason = ReasonClosed
		return
	}
	t := seg.Tuple
	h := d.hasher.Hash(t)
	res.Reason = ReasonICMP
	for {
		p, k, ok := d.established.LookupHashedKind(h, t)
		if !ok {
			return
		}
		if k == table.KindConn {
			res.Outcome, res.Reason, res.Conn = ToConn, ReasonEstablished, (*C)(p)
			return
		}
		r := (*request[C])(p)
		r.mu.Lock()
		if !r.live || r.hash != h || r.tuple != t {
			r.mu.Unlock()
			continue
		}
		// tcp_req_err: an error quoting our SYN-ACK (its sequence number
		// is our ISN) that is fatal removes the request.
		if seg.Seq == r.iss && fatalICMP(seg) {
			d.removeRequestLocked(r, true)
			r.mu.Unlock()
			d.requests.put(r)
			return
		}
		r.mu.Unlock()
		return
	}
}

// fatalICMP reports the errors that abort a request: tcp_v4_err's
// parameter problem, time exceeded, network or host unreachable, and
// icmpv6_err_convert's fatal ones (unreachable except no route and
// address unreachable, parameter problem).
func fatalICMP(seg *tuple.Segment) bool {
	switch seg.ICMP.Kind {
	case tuple.ICMPParamProblem:
		return true
	case tuple.ICMPTimeExceeded:
		return seg.Version == 4
	case tuple.ICMPUnreachable:
		if seg.Version == 4 {
			return seg.ICMP.Code == 0 || seg.ICMP.Code == 1
		}
		return seg.ICMP.Code != 0 && seg.ICMP.Code != 3
	}
	return false
}
