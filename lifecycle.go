package socktable

import (
	"errors"
	"unsafe"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// Flow is a connection's place in a Demux: its four-tuple and the
// binding that holds its port. Establish and Connect return it; the stack
// keeps it with its connection and gives it back to TimeWait or Abort.
type Flow struct {
	// Tuple is the connection's four-tuple.
	Tuple tuple.Tuple
	// Reused reports that Connect took a TIME_WAIT tuple over; Reuse is
	// then what the connection inherits (its ISN, the timestamps PAWS
	// goes on from).
	Reused bool
	Reuse  table.Reuse

	binding *table.Binding
	hash    uint64
}

// Binding returns the binding that holds the flow's port.
func (f Flow) Binding() *table.Binding { return f.binding }

// Establish completes a passive open: hs is the Handshake a Deliver
// returned, c the connection the stack made from it. In one step (a
// compare-and-swap of the established entry) c replaces the flow's
// request entry, or, for a SYN cookie, is inserted; then it is queued on
// its listener's accept queue (on the shard Deliver was told), waking an
// acceptor. If the listener closed meanwhile, c goes to the member of its
// SO_REUSEPORT group the flow hashes to (tcp_migrate_req) or Establish
// fails with ErrClosed.
//
// It returns ErrExists if the flow's request is gone (another segment
// completed it first, or it was reset or expired; deliver the segment
// again: it finds the winner's connection, or an RST is due), ErrInvalid
// for a Handshake that did not come from Deliver or a nil c, and
// ErrClosed, ErrBacklog or ErrTableFull if c could not be queued or
// inserted: it is then in no table and holds no port, and the stack
// resets it. It may block briefly on the request's lock and the tables'
// locks.
func (d *Demux[C]) Establish(hs *Handshake[C], c *C) (Flow, error) {
	if hs == nil || c == nil || hs.Listener == nil {
		return Flow{}, ErrInvalid
	}
	t, h := hs.Tuple, hs.hash
	cp := unsafe.Pointer(c)
	var l *Listener[C]
	if r := hs.req; r != nil {
		r.mu.Lock()
		if !r.live || r.gen != hs.gen {
			r.mu.Unlock()
			return Flow{}, ErrExists
		}
		var ok bool
		if l, ok = d.liveListenerLocked(r, h); !ok {
			return Flow{}, ErrClosed
		}
		b, err := d.ports.Inherit(l.binding, t.Local.Addr)
		if err != nil { // the listener closed after our check
			d.removeRequestLocked(r, true)
			r.mu.Unlock()
			d.requests.put(r)
			return Flow{}, ErrClosed
		}
		if !d.established.CompareAndSwapHashedKind(h, t, unsafe.Pointer(r), cp, table.KindConn) {
			// Cannot happen while r is live and locked: only its lock
			// holders remove it.
			r.mu.Unlock()
			_ = d.ports.Release(b)
			return Flow{}, ErrExists
		}
		r.listener.qlen.Add(-1)
		if r.timeouts == 0 {
			r.listener.young.Add(-1)
		}
		d.timers.Cancel(r.timer)
		r.live = false
		r.gen++
		r.listener = nil
		r.mu.Unlock()
		d.requests.put(r)
		d.at(atEstablishSwapped)
		return d.enqueue(l, Flow{Tuple: t, binding: b, hash: h}, hs.shard, c)
	}
	l = hs.Listener
	if !hs.Cookie || d.hasher.Hash(t) != h {
		return Flow{}, ErrInvalid
	}
	if l.closed.Load() {
		s, ok := l.successor(h)
		if !ok {
			return Flow{}, ErrClosed
		}
		l = s
	}
	b, err := d.ports.Inherit(l.binding, t.Local.Addr)
	if err != nil {
		return Flow{}, ErrClosed
	}
	if err := d.established.InsertHashedKind(h, t, cp, table.KindConn); err != nil {
		_ = d.ports.Release(b)
		return Flow{}, err
	}
	d.at(atEstablishSwapped)
	return d.enqueue(l, Flow{Tuple: t, binding: b, hash: h}, hs.shard, c)
}

// enqueue queues c, now the owner of flow f in the established table, on
// l's accept queue, or undoes its insertion.
func (d *Demux[C]) enqueue(l *Listener[C], f Flow, shard int, c *C) (Flow, error) {
	if shard >= l.queue.Shards() {
		shard = l.queue.Steer(f.hash)
	}
	err := l.queue.TryEnqueue(shard, Accepted[C]{Conn: c, Flow: f})
	if err == nil {
		return f, nil
	}
	if errors.Is(err, ErrBacklog) {
		d.stats.add(cListenOverflows, 1)
		d.stats.add(cListenDrops, 1)
	}
	d.endConn(f, c)
	return Flow{}, err
}

// Connect opens a connection from a port ConnectAny picks (connect(2) on
// an unbound socket, RFC 6056's algorithm 4, taking a TIME_WAIT tuple
// over as tcp_tw_reuse allows) and inserts c as its owner: from the
// return on, Deliver hands the flow's segments to c. It returns the
// flow; if Reused, the stack starts c from Flow.Reuse (its ISN,
// timestamps), else from ISN(Flow.Tuple). Errors are Ports.ConnectAny's
// and the established table's (ErrTableFull); nothing is held then.
func (d *Demux[C]) Connect(req table.ConnectRequest, c *C) (Flow, error) {
	if c == nil {
		return Flow{}, ErrInvalid
	}
	if d.closed.Load() {
		return Flow{}, ErrClosed
	}
	cc := &connectClaim[C]{d: d, c: unsafe.Pointer(c)}
	req.Flows = cc
	cr, err := d.ports.ConnectAny(req)
	if err != nil {
		return Flow{}, err
	}
	return cc.flow(cr), nil
}

// ConnectBound connects a socket bound with Ports().Bind (connect(2)
// after bind(2)) from local to remote, and inserts c, as Connect does. A
// TIME_WAIT tuple is taken over whatever tcp_tw_reuse says (the port was
// bound explicitly), as Linux does.
func (d *Demux[C]) ConnectBound(b *table.Binding, local tuple.Addr, remote tuple.Endpoint, c *C) (Flow, error) {
	if c == nil {
		return Flow{}, ErrInvalid
	}
	if d.closed.Load() {
		return Flow{}, ErrClosed
	}
	cc := &connectClaim[C]{d: d, c: unsafe.Pointer(c)}
	cr, err := d.ports.ConnectWith(b, local, remote, cc)
	if err != nil {
		return Flow{}, err
	}
	return cc.flow(cr), nil
}

// connectClaim is the FlowChecker of one connect: it grants a four-tuple
// and inserts the connection into the established table in one step,
// under the port's lock and the TIME_WAIT shard's (Linux's
// __inet_check_established), so that a concurrent Deliver finds the old
// TIME_WAIT entry or the new connection, never neither, and a concurrent
// connect of the same tuple finds it taken the moment it is bound.
type connectClaim[C any] struct {
	d    *Demux[C]
	c    unsafe.Pointer
	hash uint64 // of the tuple granted
}

// ClaimFlow implements table.FlowChecker: it grants t only if no
// connection holds it and any TIME_WAIT entry may be taken over, and then
// inserts cc's connection under the TIME_WAIT shard's lock (Claim).
func (cc *connectClaim[C]) ClaimFlow(t tuple.Tuple, explicitBind bool) table.FlowClaim {
	d := cc.d
	h := d.hasher.Hash(t)
	if _, ok := d.established.LookupHashed(h, t); ok {
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	var insertErr error
	reuse, owner, taken, err := d.timeWait.ClaimHashed(h, t, explicitBind, func() error {
		d.at(atConnectBound)
		insertErr = d.established.InsertHashed(h, t, cc.c)
		return insertErr
	})
	switch {
	case err == nil:
	case err == insertErr && !errors.Is(err, ErrExists):
		return table.FlowClaim{Verdict: table.FlowInUse, Err: err} // full, or closed
	default:
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	cc.hash = h
	if !taken {
		return table.FlowClaim{}
	}
	d.stats.add(cTWRecycled, 1)
	return table.FlowClaim{Verdict: table.FlowTakenOver, Owner: owner,
		Reuse: table.Reuse{WriteSeq: reuse.WriteSeq, TSRecent: reuse.TSRecent, TSRecentStamp: reuse.TSRecentStamp}}
}

// flow is the Flow of the connection cc inserted, connected as cr says.
func (cc *connectClaim[C]) flow(cr table.ConnectResult) Flow {
	return Flow{Tuple: cr.Tuple, Reused: cr.Reused, Reuse: cr.Reuse, binding: cr.Binding, hash: cc.hash}
}

// TimeWait closes connection c into TIME_WAIT (or, with st.Substate
// FinWait2, an orphaned FIN_WAIT2): the TIME_WAIT entry is entered before
// c leaves the established table, so a concurrent Deliver finds c or the
// entry, never neither; the entry then answers the peer and owns the
// flow's port until it expires (or a segment or a connect takes it
// over). At the TIME_WAIT table's cap the connection closes with no
// TIME_WAIT (TCPTimeWaitOverflow) and its port is released; TimeWait
// then returns nil all the same, as Linux's close does.
//
// It returns ErrInvalid if c does not own f (it was aborted or closed
// already), and the TIME_WAIT table's ErrClosed after Close.
func (d *Demux[C]) TimeWait(f Flow, c *C, st timewait.State) error {
	if f.binding == nil || c == nil {
		return ErrInvalid
	}
	mu := d.closeLock(f.hash)
	mu.Lock()
	defer mu.Unlock()
	cp := unsafe.Pointer(c)
	if !d.ownsLocked(f, cp) {
		return ErrInvalid
	}
	// From here c is ours to end: every other end takes the same lock.
	if err := d.ports.TimeWait(f.binding); err != nil {
		return err
	}
	err := d.timeWait.EnterHashed(f.hash, f.Tuple, st, f.binding)
	d.at(atTimeWaitEntered)
	d.established.CompareAndDeleteHashed(f.hash, f.Tuple, cp)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTimeWaitFull):
		d.stats.add(cTimeWaitOverflow, 1)
		_ = d.ports.Release(f.binding)
		return nil
	}
	// The table is closed (a tuple cannot have a TIME_WAIT entry while c
	// owns it): end the connection without one.
	_ = d.ports.Release(f.binding)
	return err
}

// Abort removes connection c at once (an RST sent or received, a
// connection reset by its stack): no TIME_WAIT, its port released.
// Connection trackers learned to do this on RST, not on a first FIN
// (Retina's lesson): a FIN is TimeWait's business. It returns
// ErrInvalid if c does not own f.
func (d *Demux[C]) Abort(f Flow, c *C) error {
	if f.binding == nil || c == nil {
		return ErrInvalid
	}
	if !d.endConn(f, c) {
		return ErrInvalid
	}
	return nil
}

// ownsLocked reports whether connection cp owns flow f in the established
// table; the caller holds f's close stripe, so the answer stands until it
// lets go.
func (d *Demux[C]) ownsLocked(f Flow, cp unsafe.Pointer) bool {
	v, k, ok := d.established.LookupHashedKind(f.hash, f.Tuple)
	return ok && v == cp && k == table.KindConn
}

// endConn removes connection c of flow f from the established table and
// releases its port, if c owns f.
func (d *Demux[C]) endConn(f Flow, c *C) bool {
	mu := d.closeLock(f.hash)
	mu.Lock()
	defer mu.Unlock()
	cp := unsafe.Pointer(c)
	if !d.ownsLocked(f, cp) {
		return false
	}
	// The port goes first: while the entry is still there, a connect to
	// the tuple is refused by the established table (c still owns it, as
	// Deliver says); the other order would leave a moment in which
	// Deliver finds no owner but connect still finds the tuple bound.
	_ = d.ports.Release(f.binding)
	d.established.CompareAndDeleteHashed(f.hash, f.Tuple, cp)
	return true
}

// Shutdown stops the Demux: it closes every listener, returning what they
// held as Orphans (nothing migrates: every listener closes), then stops
// the timers and closes the tables; established connections and
// TIME_WAIT entries are dropped with them. Later calls return ErrClosed.
// A second Shutdown returns ErrClosed.
func (d *Demux[C]) Shutdown() (Orphans[C], error) {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	var all Orphans[C]
	if d.closed.Load() {
		return all, ErrClosed
	}
	d.shutting.Store(true) // nothing is left to migrate to
	for _, hl := range d.listeners.All() {
		o, err := hl.Value().Close()
		if err == nil {
			all.Conns = append(all.Conns, o.Conns...)
			all.Requests = append(all.Requests, o.Requests...)
		}
	}
	d.closed.Store(true)
	_ = d.timers.Close()
	_ = d.timeWait.Close()
	_ = d.ports.Close()
	_ = d.established.Close()
	return all, nil
}
