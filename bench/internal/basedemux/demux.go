// Package basedemux is the baseline demux of the benchmarks and of
// socksim: the demux socktable.Demux is — established table (with request
// entries), TIME_WAIT table, listener index, in Linux's order — with every
// structure the segment path touches replaced by one design: a linear scan
// (smoltcp), maps behind an RWMutex (gVisor), sync.Map, or xsync's MapOf.
//
// For the segments the benchmarks and socksim send it gives the Result
// socktable gives (the bench package checks this before timing), with the
// TIME_WAIT rules cut down to those segments' (every segment to a TIME_WAIT
// entry is ACKed), TIME_WAIT expiry as a FIFO sweep, a connect that probes
// the port range in order, and no accept queue, SYN-queue bound, SYN
// cookies or bind table: the baselines do less work than socktable on the
// SYN, churn and connect paths, never more. It is not a TCP demux to use.
package basedemux

import (
	"fmt"
	"sync"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/tuple"
)

// Impls are the baseline designs, in display order.
var Impls = []string{"linear", "rwmutex", "syncmap", "xsync"}

// entry is an established-table entry: a connection, or a request (SYN
// received, SYN-ACK sent) while conn is nil.
type entry[C any] struct {
	conn     *C
	iss, irs uint32
}

// TimeWaitState is what a baseline's TIME_WAIT entry answers with.
type TimeWaitState struct {
	RcvNxt, SndNxt uint32
	Window         uint16
}

// listener is a baseline's listener: what its SYN-ACKs announce.
type listener struct {
	mss, window uint16
}

// expiry is a TIME_WAIT entry's place in the sweep's FIFO.
type expiry struct {
	t  tuple.Tuple
	tw *TimeWaitState
	at time.Duration
}

// Demux is the baseline demux over one design. All methods are safe for
// concurrent use; how they scale is the design's.
type Demux[C any] struct {
	impl        string
	established kv[tuple.Tuple, *entry[C]]
	timeWait    kv[tuple.Tuple, *TimeWaitState]
	listeners   kv[tuple.Endpoint, *listener]
	jar         *syncookie.Jar

	mu      sync.Mutex // guards the sweep's FIFO
	expires []expiry
	head    int
}

// New returns an empty baseline demux of design impl (one of Impls),
// presized for n connections where the design allows.
func New[C any](impl string, n int) (*Demux[C], error) {
	switch impl {
	case "linear", "rwmutex", "syncmap", "xsync":
	default:
		return nil, fmt.Errorf("basedemux: unknown design %q", impl)
	}
	return &Demux[C]{
		impl:        impl,
		established: newKV[tuple.Tuple, *entry[C]](impl, n),
		timeWait:    newKV[tuple.Tuple, *TimeWaitState](impl, n/4),
		listeners:   newKV[tuple.Endpoint, *listener](impl, 16),
		jar:         syncookie.NewJar(),
	}, nil
}

// Impl is the design's name.
func (d *Demux[C]) Impl() string { return d.impl }

// Listen adds a listener on ep (a zero Addr is the wildcard) whose
// SYN-ACKs announce mss and window. It reports false if ep has one.
func (d *Demux[C]) Listen(ep tuple.Endpoint, mss, window uint16) bool {
	return d.listeners.insert(ep, &listener{mss: mss, window: window})
}

// Deliver is the baseline's Deliver: established (or request), TIME_WAIT,
// listener (exact address, then the wildcard), else the no-socket RST.
func (d *Demux[C]) Deliver(seg *tuple.Segment) (res socktable.Result[C]) {
	t := seg.Tuple
	if e, ok := d.established.get(t); ok {
		if e.conn != nil {
			res.Outcome, res.Reason, res.Conn = socktable.ToConn, socktable.ReasonEstablished, e.conn
			return res
		}
		return d.toRequest(seg, e)
	}
	if tw, ok := d.timeWait.get(t); ok {
		res.Outcome, res.Reason = socktable.Send, socktable.ReasonTimeWait
		res.Reply = socktable.Reply{Flags: tuple.ACK, Seq: tw.SndNxt, Ack: tw.RcvNxt, Window: tw.Window}
		return res
	}
	l, ok := d.listeners.get(t.Local)
	if !ok {
		l, ok = d.listeners.get(tuple.Endpoint{Port: t.Local.Port})
	}
	if ok && seg.Flags&(tuple.SYN|tuple.ACK|tuple.RST) == tuple.SYN {
		e := &entry[C]{iss: d.jar.ISN(t, 0), irs: seg.Seq}
		if d.established.insert(t, e) {
			res.Outcome, res.Reason = socktable.Send, socktable.ReasonSynQueued
			res.Reply = socktable.Reply{Flags: tuple.SYN | tuple.ACK, Seq: e.iss, Ack: seg.Seq + 1, Window: l.window, MSS: l.mss}
			return res
		}
	}
	if seg.Flags&tuple.RST == 0 {
		res.Outcome, res.Reason = socktable.Send, socktable.ReasonNoSocket
		res.Reply = socktable.Reply{Flags: tuple.RST, Seq: seg.Ack}
		if seg.Flags&tuple.ACK == 0 {
			res.Reply = socktable.Reply{Flags: tuple.RST | tuple.ACK, Ack: seg.Seq + uint32(seg.PayloadLen) + 1}
		}
		return res
	}
	res.Reason = socktable.ReasonNoSocket
	return res
}

// toRequest: the final ACK completes the handshake; an in-window RST
// removes the request.
func (d *Demux[C]) toRequest(seg *tuple.Segment, e *entry[C]) (res socktable.Result[C]) {
	switch {
	case seg.Flags&tuple.RST != 0 && seg.Seq == e.irs+1:
		d.established.remove(seg.Tuple, e)
		res.Reason = socktable.ReasonEmbryonicReset
	case seg.Flags&tuple.ACK != 0 && seg.Ack == e.iss+1:
		res.Outcome, res.Reason = socktable.Completed, socktable.ReasonRequest
		res.Handshake.ISS, res.Handshake.IRS, res.Handshake.Tuple = e.iss, e.irs, seg.Tuple
	default:
		res.Reason = socktable.ReasonRequest
	}
	return res
}

// Establish makes the request of t the connection c (Demux.Establish).
func (d *Demux[C]) Establish(t tuple.Tuple, c *C) bool {
	e, ok := d.established.get(t)
	if !ok || e.conn != nil {
		return false
	}
	return d.established.swap(t, e, &entry[C]{conn: c, iss: e.iss, irs: e.irs})
}

// Abort removes connection c of t (Demux.Abort).
func (d *Demux[C]) Abort(t tuple.Tuple, c *C) bool {
	e, ok := d.established.get(t)
	return ok && e.conn == c && d.established.remove(t, e)
}

// TimeWait moves connection c of t into TIME_WAIT until the time at
// (Demux.TimeWait): the entry goes in before the connection leaves, so a
// segment finds one of them at every moment.
func (d *Demux[C]) TimeWait(t tuple.Tuple, c *C, st TimeWaitState, at time.Duration) bool {
	e, ok := d.established.get(t)
	if !ok || e.conn != c {
		return false
	}
	tw := &st
	if !d.timeWait.insert(t, tw) {
		return false
	}
	if !d.established.remove(t, e) {
		d.timeWait.remove(t, tw)
		return false
	}
	d.push(t, tw, at)
	return true
}

func (d *Demux[C]) push(t tuple.Tuple, tw *TimeWaitState, at time.Duration) {
	d.mu.Lock()
	d.expires = append(d.expires, expiry{t: t, tw: tw, at: at})
	d.mu.Unlock()
}

// Expire removes the TIME_WAIT entries due at now (entries are expected
// in the order of their times, as a fixed lifetime gives them) and
// returns how many it removed.
func (d *Demux[C]) Expire(now time.Duration) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for d.head < len(d.expires) && d.expires[d.head].at <= now {
		x := d.expires[d.head]
		d.expires[d.head] = expiry{}
		d.head++
		if d.timeWait.remove(x.t, x.tw) {
			n++
		}
	}
	if d.head > 1024 && d.head*2 > len(d.expires) { // reclaim the swept prefix
		d.expires = append(d.expires[:0], d.expires[d.head:]...)
		d.head = 0
	}
	return n
}

// Connect picks a local port for a connection from local to remote, as a
// stack over these tables would: the ports lo..hi in order from offset
// start, the first whose four-tuple neither table holds, and inserts c
// there. It reports false when every port's tuple is taken.
func (d *Demux[C]) Connect(local tuple.Addr, remote tuple.Endpoint, lo, hi uint16, start uint32, c *C) (tuple.Tuple, bool) {
	span := uint32(hi) - uint32(lo) + 1
	for i := range span {
		t := tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: lo + uint16((start+i)%span)}, Remote: remote}
		if _, ok := d.timeWait.get(t); ok {
			continue
		}
		e := &entry[C]{conn: c}
		if !d.established.insert(t, e) {
			continue
		}
		// A connection of t may have gone to TIME_WAIT between the two
		// looks (TimeWait enters TIME_WAIT, then leaves the established
		// table): look again, now that t is ours.
		if _, ok := d.timeWait.get(t); ok {
			d.established.remove(t, e)
			continue
		}
		return t, true
	}
	return tuple.Tuple{}, false
}

// ConnectTuple inserts connection c of t, a four-tuple the caller chose
// (a bound connect): a TIME_WAIT entry of t is taken over (removed), as a
// connect that reuses it does. It reports false if t has a connection.
func (d *Demux[C]) ConnectTuple(t tuple.Tuple, c *C) bool {
	if tw, ok := d.timeWait.get(t); ok {
		d.timeWait.remove(t, tw)
	}
	return d.established.insert(t, &entry[C]{conn: c})
}

// Fill inserts connection c of t, which the caller knows no table holds,
// without the linear design's duplicate scan (filling a linear table of
// 1e6 one checked insert at a time would take hours).
func (d *Demux[C]) Fill(t tuple.Tuple, c *C) { d.established.fill(t, &entry[C]{conn: c}) }

// FillTimeWait inserts a TIME_WAIT entry for t, which the caller knows no
// table holds, expiring at at (times in order, as for Expire), or never
// if at is negative (no place in the sweep's FIFO, no memory for it).
func (d *Demux[C]) FillTimeWait(t tuple.Tuple, st TimeWaitState, at time.Duration) {
	tw := &st
	d.timeWait.fill(t, tw)
	if at >= 0 {
		d.push(t, tw, at)
	}
}

// Entries counts the established table's entries (connections and
// requests) and TimeWaits the TIME_WAIT table's. sync.Map's count is a
// walk of the map.
func (d *Demux[C]) Entries() int { return d.established.size() }

// TimeWaits counts the TIME_WAIT entries.
func (d *Demux[C]) TimeWaits() int { return d.timeWait.size() }
