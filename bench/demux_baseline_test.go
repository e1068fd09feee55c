package bench

import (
	"sync"

	xsync3 "github.com/puzpuzpuz/xsync/v3"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/tuple"
)

// The Demux baselines: the same demux — established table (with request
// entries), TIME_WAIT table, listener index, in Linux's order — with
// every structure the segment path touches replaced by one design: a
// linear scan (smoltcp), maps behind an RWMutex (gVisor), sync.Map, or
// xsync's MapOf. Each gives the Result socktable gives for the segments
// the benchmarks send (checked before timing, see checkSameResult), with
// TIME_WAIT rules cut down to those segments' (a retransmitted FIN is
// re-ACKed) and no accept queue or bind table: the baselines do less
// work than socktable on the SYN and churn paths, never more.

// kv is one table of a baseline design.
type kv[K comparable, V comparable] interface {
	get(k K) (V, bool)
	// insert stores v if k is absent.
	insert(k K, v V) bool
	// swap replaces old by v if k maps to old.
	swap(k K, old, v V) bool
	// remove deletes k if it maps to v.
	remove(k K, v V) bool
}

// linearKV is a slice scanned on every lookup, behind an RWMutex so that
// writers may run beside the readers.
type linearKV[K comparable, V comparable] struct {
	mu   sync.RWMutex
	keys []K
	vals []V
}

func (m *linearKV[K, V]) find(k K) int {
	for i := range m.keys {
		if m.keys[i] == k {
			return i
		}
	}
	return -1
}

func (m *linearKV[K, V]) get(k K) (V, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if i := m.find(k); i >= 0 {
		return m.vals[i], true
	}
	var zero V
	return zero, false
}

func (m *linearKV[K, V]) insert(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.find(k) >= 0 {
		return false
	}
	m.keys, m.vals = append(m.keys, k), append(m.vals, v)
	return true
}

func (m *linearKV[K, V]) swap(k K, old, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(k); i >= 0 && m.vals[i] == old {
		m.vals[i] = v
		return true
	}
	return false
}

func (m *linearKV[K, V]) remove(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(k)
	if i < 0 || m.vals[i] != v {
		return false
	}
	last := len(m.keys) - 1
	m.keys[i], m.vals[i] = m.keys[last], m.vals[last]
	var zero V
	m.vals[last] = zero
	m.keys, m.vals = m.keys[:last], m.vals[:last]
	return true
}

// rwKV is gVisor's design: a Go map behind a sync.RWMutex.
type rwKV[K comparable, V comparable] struct {
	mu sync.RWMutex
	m  map[K]V
}

func (m *rwKV[K, V]) get(k K) (V, bool) {
	m.mu.RLock()
	v, ok := m.m[k]
	m.mu.RUnlock()
	return v, ok
}

func (m *rwKV[K, V]) insert(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[k]; ok {
		return false
	}
	m.m[k] = v
	return true
}

func (m *rwKV[K, V]) swap(k K, old, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.m[k]; ok && cur == old {
		m.m[k] = v
		return true
	}
	return false
}

func (m *rwKV[K, V]) remove(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.m[k]; ok && cur == v {
		delete(m.m, k)
		return true
	}
	return false
}

// syncKV is a sync.Map.
type syncKV[K comparable, V comparable] struct{ m sync.Map }

func (m *syncKV[K, V]) get(k K) (V, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (m *syncKV[K, V]) insert(k K, v V) bool {
	_, loaded := m.m.LoadOrStore(k, v)
	return !loaded
}

func (m *syncKV[K, V]) swap(k K, old, v V) bool { return m.m.CompareAndSwap(k, old, v) }
func (m *syncKV[K, V]) remove(k K, v V) bool    { return m.m.CompareAndDelete(k, v) }

// xsyncKV is xsync v3's MapOf.
type xsyncKV[K comparable, V comparable] struct{ m *xsync3.MapOf[K, V] }

func (m *xsyncKV[K, V]) get(k K) (V, bool) { return m.m.Load(k) }

func (m *xsyncKV[K, V]) insert(k K, v V) bool {
	_, loaded := m.m.LoadOrStore(k, v)
	return !loaded
}

func (m *xsyncKV[K, V]) swap(k K, old, v V) bool {
	done := false
	m.m.Compute(k, func(cur V, loaded bool) (V, bool) {
		if loaded && cur == old {
			done = true
			return v, false
		}
		return cur, !loaded
	})
	return done
}

func (m *xsyncKV[K, V]) remove(k K, v V) bool {
	done := false
	m.m.Compute(k, func(cur V, loaded bool) (V, bool) {
		done = loaded && cur == v
		return cur, done || !loaded
	})
	return done
}

// newKV returns an empty table of design impl, presized for n where the
// design allows.
func newKV[K comparable, V comparable](impl string, n int) kv[K, V] {
	switch impl {
	case "linear":
		return &linearKV[K, V]{keys: make([]K, 0, n), vals: make([]V, 0, n)}
	case "rwmutex":
		return &rwKV[K, V]{m: make(map[K]V, n)}
	case "syncmap":
		return &syncKV[K, V]{}
	case "xsync":
		return &xsyncKV[K, V]{m: xsync3.NewMapOf[K, V](xsync3.WithPresize(n))}
	}
	panic("unknown design " + impl)
}

// baseEntry is an established-table entry of a baseline: a connection, or
// a request (SYN received, SYN-ACK sent) while conn is nil.
type baseEntry struct {
	conn     *demuxConn
	iss, irs uint32
}

// baseTimeWait is a baseline's TIME_WAIT entry.
type baseTimeWait struct {
	rcvNxt, sndNxt uint32
	window         uint16
}

// baseListener is a baseline's listener.
type baseListener struct {
	mss, window uint16
}

// baseDemux is the baseline demux over one design.
type baseDemux struct {
	established kv[tuple.Tuple, *baseEntry]
	timeWait    kv[tuple.Tuple, *baseTimeWait]
	listeners   kv[tuple.Endpoint, *baseListener]
	jar         *syncookie.Jar
}

func newBaseDemux(impl string, n int) *baseDemux {
	return &baseDemux{
		established: newKV[tuple.Tuple, *baseEntry](impl, n),
		timeWait:    newKV[tuple.Tuple, *baseTimeWait](impl, n/4),
		listeners:   newKV[tuple.Endpoint, *baseListener](impl, 16),
		jar:         syncookie.NewJar(),
	}
}

// deliver is the baseline's Deliver: established (or request), TIME_WAIT,
// listener (exact address, then the wildcard), else the no-socket RST.
func (d *baseDemux) deliver(seg *tuple.Segment) (res socktable.Result[demuxConn]) {
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
		res.Reply = socktable.Reply{Flags: tuple.ACK, Seq: tw.sndNxt, Ack: tw.rcvNxt, Window: tw.window}
		return res
	}
	l, ok := d.listeners.get(t.Local)
	if !ok {
		l, ok = d.listeners.get(tuple.Endpoint{Port: t.Local.Port})
	}
	if ok && seg.Flags&(tuple.SYN|tuple.ACK|tuple.RST) == tuple.SYN {
		e := &baseEntry{iss: d.jar.ISN(t, 0), irs: seg.Seq}
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
func (d *baseDemux) toRequest(seg *tuple.Segment, e *baseEntry) (res socktable.Result[demuxConn]) {
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

// establish makes the request of t a connection (Demux.Establish).
func (d *baseDemux) establish(t tuple.Tuple, c *demuxConn) bool {
	e, ok := d.established.get(t)
	if !ok || e.conn != nil {
		return false
	}
	return d.established.swap(t, e, &baseEntry{conn: c, iss: e.iss, irs: e.irs})
}

// abort removes connection c of t (Demux.Abort).
func (d *baseDemux) abort(t tuple.Tuple, c *demuxConn) bool {
	e, ok := d.established.get(t)
	return ok && e.conn == c && d.established.remove(t, e)
}
